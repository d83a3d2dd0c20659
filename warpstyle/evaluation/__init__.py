"""Evaluating warpers: synthetic recovery, PF-PASCAL keypoints, and landmark scoring on face pairs
(landmarks only measure, never train). May import every room but the app.
"""

__all__: list[str] = []
