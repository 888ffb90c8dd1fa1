"""``monitor eval``: event-level precision, recall and F1 of several deciders on labelled clips.

The scoring half is pure and has no torch or video in it:

- ``annotations``: the labelled intervals (JSON or CSV) -> ``Interval`` values, one-line errors.
- ``matching``: predicted intervals vs labelled ones, one-to-one by temporal IoU, per (clip, kind);
  counts, precision/recall/F1, and the table and JSON the CLI prints.

Running the pipeline over the clips to get the predicted intervals lives beside these modules.
"""
