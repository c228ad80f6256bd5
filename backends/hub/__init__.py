"""The HuggingFace hub cache: its on-disk layout (``layout``), models added from it and
written back into it over any backend (``models``), and received straight into it
(``receive``).

May import ``core``, ``repo``, the ``Backend`` protocol and the error tree.
"""
