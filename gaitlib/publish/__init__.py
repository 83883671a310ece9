"""Publishing: run the notebooks with papermill into ``book/``, generate the cost page and build
the HTML book (:mod:`~gaitlib.publish.notebooks`, :mod:`~gaitlib.publish.reproduce`,
:mod:`~gaitlib.publish.cost`).  Nothing here changes a number: it decides which page is shown."""
