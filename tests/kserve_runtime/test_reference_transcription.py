"""The conformance suite's own reference computation (conformance/reference.py) is a transcription of KServe's
post-processing; it is only trusted because it agrees with KServe's real runtime, checked here."""

from __future__ import annotations

from conformance.reference import ReferenceModel
from tests.kserve_runtime.combos import COMBOS as ALL_COMBOS, TASKS, TEXTS, tolerance
from tests.kserve_runtime.compare import differences

# The reference knows the tokenizer flags; --max_length and --dtype are not among its options. It transcribes
# the three tasks with heads (text_embedding is checked against the runtime in test_answers_equal.py).
COMBOS = [c for c in ALL_COMBOS if set(c.extra) <= {"--disable_lower_case", "--disable_special_tokens",
                                                     "--return_offsets_mapping"} and c.task in TASKS
           and not c.ours_extra]  # our backends are not the reference's business


def test_reference_predictions_equal_kserve_runtime(pair, http):
    combo = pair.combo
    reference = ReferenceModel(pair.model_dir, combo.task, lower_case="--disable_lower_case" not in combo.extra,
                               add_special_tokens="--disable_special_tokens" not in combo.extra)
    for texts in TEXTS[combo.task]:
        response = http.post(f"{pair.kserve}/v1/models/model:predict", json={"instances": texts})
        assert response.status_code == 200, response.text[:300]
        expected = response.json()["predictions"]
        problems = differences(reference.predictions(texts, combo.mode), expected, tolerance(combo))
        assert not problems, f"{combo.id}: conformance/reference.py differs from KServe's runtime: {problems}"
