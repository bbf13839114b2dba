from datetime import datetime, timezone

import numpy as np
import pytest

from mfmdp.core.schema import DIMENSIONS, Labels, label_index
from mfmdp.core.records import PROFILE_FEATURES, Profile, Response, ResponseTable, profile_features


def test_response_table_is_columnar():
    t0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
    rs = [
        Response("a", t0, "u1", "hello", "comment", likes=3),
        Response("b", t0, "u2", "", "share", profile=Profile(followers=10, verified=True, verified_type=3)),
    ]
    tab = ResponseTable.from_responses(rs)
    assert tab.behavior.tolist() == [1, 0]
    assert tab.profiles.shape == (2, len(PROFILE_FEATURES))
    assert tab.profiles[0].sum() == 0 and tab.profiles[1][PROFILE_FEATURES.index("verified_org")] == 1
    assert np.isnan(tab.likes[1]) and tab.likes[0] == 3


def test_profile_features_none_is_zero():
    assert not profile_features(None).any()


def test_label_index_errors_name_dimension_and_label():
    assert label_index("state", "negative") == 2
    with pytest.raises(ValueError, match="stance"):
        label_index("stance", "maybe")
    with pytest.raises(ValueError, match="unknown dimension"):
        label_index("mood", "x")


def test_labels_fill_missing_dimensions():
    lab = Labels({"state": np.array([0, 2])})
    assert set(lab.codes) == set(DIMENSIONS)
    assert lab.names("state") == ["positive", "negative"] and lab.names("belief") == [None, None]
