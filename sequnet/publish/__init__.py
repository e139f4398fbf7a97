"""Publishing and tools: the papermill runner, the book build and its reproduction page, and the ``info``
command. The only library code that knows the repository's folders (``paths``)."""
