"""Digests of the records every builder makes from its dummy data, to show that a rewrite of the
builders keeps them: per split, each record's key (its clip_id) and a sha256 of its arrays.

`python tests/helpers/record_digests.py` builds every corpus below with the code of this checkout
and writes tests/builder_record_digests.json; tests/test_builder_records_equal.py builds them again
and compares. The JSON was written by the builders before they moved onto one Beam base (the
process-pool implementation), so the comparison is against that implementation's records. One
exception: demo_av's digests were rewritten when the demo's voices gained a vocal effort by class
(a change of the synthesised corpus, not of the builder); then, built from the same code before and
after that change, its 28 records differed only in `log_mel` (24 records; happiness's 4 not at all,
as its +3 dB effort cancels the recording level's 3 dB shift).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGESTS = ROOT / "tests" / "builder_record_digests.json"
DEMO_IDENTITIES = 4  # the demo corpus is synthesised: 4 faces x 7 classes = 28 clips

# name/config -> the manual folder it is built from (None: demo_av, synthesised into a temp folder)
CORPORA = {
    "afew/gray64_t8": "afew",
    "casme2/gray64_t8": "casme2",
    "ck_plus/gray64_t8": "ck_plus",
    "crema_d/gray64_t8": "crema_d",
    "demo_av/gray64_t8": None,
    "fer2013/raw48": "fer2013",
    "fer2013/aligned64": "fer2013",
    "mmi/gray64_t8": "mmi",
    "ravdess/gray64_t8": "ravdess",
    "savee/gray64_t8": "savee",
    "send/gray64_2hz": "send",
}


def record_digest(record: dict) -> str:
    """sha256 over every field of a decoded record, in name order: dtype, shape and bytes of each."""
    h = hashlib.sha256()
    for name in sorted(record):
        value = np.asarray(record[name])
        h.update(name.encode())
        h.update(str(value.dtype).encode())
        h.update(str(value.shape).encode())
        h.update(value.tobytes() if value.dtype != object else repr(value.tolist()).encode())
    return h.hexdigest()


def split_digests(builder) -> dict[str, dict[str, str]]:
    """{split: {clip_id: digest}} of a prepared builder's records."""
    out = {}
    for split in sorted(builder.info.splits):
        source = builder.as_data_source(split=split)
        digests = {}
        for i in range(len(source)):
            record = source[i]
            key = record["clip_id"]
            key = key.decode() if isinstance(key, bytes) else str(key)
            assert key not in digests, f"{split}: clip_id {key} twice"
            digests[key] = record_digest(record)
        out[split] = dict(sorted(digests.items()))
    return out


def demo_manual_dir(directory: pathlib.Path) -> pathlib.Path:
    """A small synthesised demo corpus (the first DEMO_IDENTITIES faces), as demo_av's manual folder."""
    from data_builders.demo_av import synth

    identities, _ = synth.load_identities()
    synth.write_demo_corpus(directory, seed=0, num_workers=2, identities=identities[:DEMO_IDENTITIES])
    return directory


def manual_dir(name: str, scratch: pathlib.Path) -> pathlib.Path:
    folder = CORPORA[name]
    if folder is None:
        return demo_manual_dir(scratch / "demo_raw")
    return ROOT / "data_builders" / folder / "dummy_data"


def build_digests(name: str, scratch: pathlib.Path, **build_kwargs) -> dict[str, dict[str, str]]:
    """Build `name` from its dummy data into `scratch` (through data_builders.build) and digest it."""
    import data_builders

    data_dir = scratch / "tfds"
    data_builders.build(name, str(data_dir), str(manual_dir(name, scratch)), **build_kwargs)
    return split_digests(data_builders.builder(name, str(data_dir)))


def main(names: list[str]) -> None:
    stored = json.loads(DIGESTS.read_text()) if DIGESTS.is_file() else {}
    for name in names or list(CORPORA):
        with tempfile.TemporaryDirectory() as tmp:
            stored[name] = build_digests(name, pathlib.Path(tmp))
        print(name, {split: len(d) for split, d in stored[name].items()}, flush=True)
        DIGESTS.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
