"""``[native]`` is validated at load: unknown keys and impossible limits are ConfigErrors naming the key."""

from __future__ import annotations

import pytest

from minisentry.errors import ConfigError


@pytest.mark.parametrize("native, sourcemaps, named", [
    ({"max_files": 1}, {}, "native.max_files"),
    ({"cache_bytes": 0}, {}, "native.cache_bytes"),
    ({"max_file_bytes": 10, "max_store_bytes": 5}, {}, "native.max_file_bytes"),
])
def test_invalid_native_settings(make_config, native, sourcemaps, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        make_config(native=native, sourcemaps=sourcemaps)


def test_defaults_are_valid(make_config):
    config = make_config()
    assert config.native.enabled and config.native.max_file_bytes <= config.sourcemaps.max_chunk_store_bytes


def test_a_small_chunk_store_for_source_maps_alone_is_allowed(make_config):
    # Chunks of a larger debug file are refused at chunk upload (413) instead.
    assert make_config(sourcemaps={"max_chunk_store_bytes": 1000, "max_request_bytes": 1000,
                                   "chunk_size": 1000}).native.max_file_bytes > 1000
