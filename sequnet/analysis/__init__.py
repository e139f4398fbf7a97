"""What the notebooks show: complexity counts and sweeps, the committed benchmarks read into tables, stability of
long generations, the listening test, and the tables and figures of training runs. Knows no repository path:
callers pass folders in."""
