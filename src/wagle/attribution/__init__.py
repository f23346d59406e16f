"""Attribution: score every weight for its influence on forgetting, then select a mask."""
