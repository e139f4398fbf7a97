from sequnet.cli import main

raise SystemExit(main())
