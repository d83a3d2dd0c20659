"""Pair datasets of the warper: synthetic affine+TPS warps and PF-PASCAL keypoint pairs."""
