"""Data: every source is prepared into the same three CSVs, which everything else reads.

``imdb`` (with ``download``) turns the aclImdb archive into ``train.csv``,
``validation.csv`` and ``test.csv`` (columns ``text,label``) plus ``manifest.json``;
``splits`` reads and validates such a directory, whatever prepared it. A new source is a
new module beside ``imdb`` that writes the same layout. ``config`` holds the options
(light, so the command line starts without pandas).
"""
