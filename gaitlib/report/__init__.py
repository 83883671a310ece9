"""Report: run the study's notebooks with papermill and build the book."""
