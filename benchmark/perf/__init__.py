"""Speed scripts (print figures; ``make speed``) and side-by-side peer measurements (``peers/``)."""
