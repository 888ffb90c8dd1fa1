"""Event clips: each camera's recent frames in a bounded ring (``buffer``), when a clip is due
(``schedule``), H.264 MP4 encoding (``encode``, the only PyAV import) and the clip thread
(``writer``)."""
