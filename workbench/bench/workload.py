"""What `workbench bench` sends: texts, grouped into request bodies for V1, V2 or V2 over gRPC, with token counts.

Texts come from a file (one text per line, blank lines skipped) or from `SAMPLE_TEXTS`, a built-in
set of CoNLL-style news sentences written for this project. Request bodies are serialised once,
up front (JSON for REST, a `ModelInferRequest` message for gRPC), so the load generator spends its
time on the wire and not on encoding.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from workbench import oip_messages
from workbench.oip_messages import raw_bytes_elements  # noqa: F401  (tests use it from here)

PROTOCOLS = ("v1", "v2", "grpc", "openai")
REST_PROTOCOLS = ("v1", "v2", "openai")  # openai: POST /openai/v1/embeddings (text_embedding)
INPUT_NAME = "input-0"  # the one BYTES input, by the same name over REST V2 and gRPC

# Short and long, with people, places, organisations and numbers, like CoNLL-2003 news lines.
SAMPLE_TEXTS: tuple[str, ...] = (
    "Maria Lopez joined the Lisbon office of Northwind Bank in March .",
    "Rain stopped play at Edgbaston on Friday .",
    "The Danube Shipping Company said its profit rose 12 percent to 48 million euros in the first half .",
    "Kenji Watanabe scored twice as Osaka Blue beat Harbour City 3-1 on Sunday .",
    "Shares in Helios Energy fell 4 percent in Frankfurt after the chief executive resigned .",
    "OSLO 1996-08-22",
    "The United Nations envoy met officials in Nairobi to discuss food aid for the region .",
    "Police in Marseille arrested two men after a raid on a warehouse near the port .",
    "Anna Schmidt , a spokeswoman for the ministry , declined to comment .",
    "Results of the European championship qualifier played on Wednesday :",
    "Greenfield Motors will build a new plant in Ohio , creating about 1,500 jobs by the end of next year .",
    "The prime minister of New Zealand arrives in Tokyo on Monday for a three-day visit .",
    "Copper prices on the London Metal Exchange climbed to their highest level since April .",
    "Pedro Alvarez ( Spain ) beat Thomas Berg ( Sweden ) 6-4 6-3 .",
    "The Red River flooded several villages in northern Vietnam , officials in Hanoi said .",
    "Atlas Airlines said it would cut 300 jobs and close its maintenance base in Glasgow .",
    "A court in Athens sentenced the former mayor to five years in prison for fraud .",
    "Standings after Saturday 's matches in the Dutch first division :",
    "Professor Li Wei of Peking University presented the study at a conference in Boston .",
    "The central bank of Chile left its main interest rate unchanged at 7.5 percent .",
    "Sophie Martin won the women 's 10,000 metres in a personal best time .",
    "Talks between the union and Baltic Ferries broke down late on Thursday , a union official said .",
    "The Indian Ocean island of Mauritius expects more than 600,000 tourists this year .",
    "Goalkeeper Jan Novak saved a penalty in the last minute to give Prague Rovers a 1-0 win .",
    "Silverline Telecom agreed to buy Cape Networks of South Africa for 210 million dollars .",
    "Fire broke out at a chemical plant outside Rotterdam , but no one was hurt , the fire brigade said .",
    "Canadian Finance Minister Ruth Abbott will present the budget to parliament in Ottawa next month .",
    "Hong Kong stocks ended higher , led by property shares .",
    "The Rhine Valley Wine Festival drew record crowds to Mainz over the weekend .",
    "Election officials in Lagos said turnout was lower than in the previous vote , "
    "blaming heavy rain and long queues at polling stations across the city .",
    "Omar Haddad , who trains at a club in Casablanca , qualified for the final in Rome .",
    "BRUSSELS 1996-08-23",
)

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


_TAG = re.compile(r"^(O|[BIES]-\S+)$")


def looks_like_conll(lines: Sequence[str]) -> bool:
    """A CoNLL file (one token per line, the tag last, e.g. CoNLL-2003's train.txt/valid.txt)."""
    sample = [line.split() for line in lines if line.strip()][:20]
    return bool(sample) and all(len(fields) >= 2 and (fields[0] == "-DOCSTART-" or _TAG.match(fields[-1]))
                                for fields in sample)


def load_texts(path: str | Path | None) -> list[str]:
    """Texts from `path`, or the built-in sample when `path` is None. A plain file gives one text per line
    (blank lines skipped); a CoNLL file (e.g. CoNLL-2003 valid.txt) gives one text per sentence, its tokens
    joined by spaces, in file order."""
    if path is None:
        return list(SAMPLE_TEXTS)
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"texts file not found: {file}")
    lines = file.read_text(encoding="utf-8").splitlines()
    if looks_like_conll(lines):
        from workbench.ner.conll import read_sentences

        texts = [" ".join(sentence.tokens) for sentence in read_sentences(file)[0]]
    else:
        texts = [line.strip() for line in lines]
    texts = [text for text in texts if text]
    if not texts:
        raise ValueError(f"texts file {file} has no non-blank lines")
    return texts


def count_words(text: str) -> int:
    """Client-side token count: words and punctuation marks (what a pre-tokenizer would split)."""
    return len(_TOKEN.findall(text))


def tokenizer_counter(tokenizer_dir: str | Path) -> Callable[[str], int]:
    """Count real sub-word tokens (special tokens included) with the tokenizer saved in `tokenizer_dir`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))

    def count(text: str) -> int:
        return len(tokenizer(text, truncation=True)["input_ids"])

    return count


def group_texts(texts: Sequence[str], batch: int) -> list[list[str]]:
    """Groups of `batch` consecutive texts, wrapping around, one group starting at every text."""
    if batch < 1:
        raise ValueError("--batch must be at least 1")
    if not texts:
        raise ValueError("no texts to send")
    n = len(texts)
    return [[texts[(start + i) % n] for i in range(batch)] for start in range(0, n)]


def request_path(protocol: str, model_name: str) -> str:
    if protocol == "v1":
        return f"/v1/models/{model_name}:predict"
    if protocol == "v2":
        return f"/v2/models/{model_name}/infer"
    if protocol == "openai":
        return "/openai/v1/embeddings"  # the model name travels in the body
    raise ValueError(f"unknown protocol {protocol!r} for a URL path: choose one of {', '.join(REST_PROTOCOLS)}")


def request_body(protocol: str, texts: Sequence[str], model_name: str = "model") -> dict:
    """The JSON body that asks for predictions on `texts` (V1 `instances`, one V2 BYTES input, or OpenAI's
    embeddings request with float vectors: KServe's runtime fails without `encoding_format`)."""
    if protocol == "v1":
        return {"instances": list(texts)}
    if protocol == "v2":
        return {"inputs": [{"name": INPUT_NAME, "shape": [len(texts)], "datatype": "BYTES", "data": list(texts)}]}
    if protocol == "openai":
        return {"model": model_name, "input": list(texts), "encoding_format": "float"}
    raise ValueError(f"unknown protocol {protocol!r} for a JSON body: choose one of {', '.join(REST_PROTOCOLS)}")


def grpc_request(model_name: str, texts: Sequence[str], raw: bool = False):
    """The OIP `ModelInferRequest` for `texts` (one BYTES input of shape [n], typed or raw)."""
    return oip_messages.infer_request(model_name, texts, input_name=INPUT_NAME, raw=raw)


def encode_request(protocol: str, texts: Sequence[str], model_name: str, raw: bool = False) -> bytes:
    """The request as sent on the wire: JSON for v1/v2/openai, a serialised `ModelInferRequest` for grpc."""
    if protocol == "grpc":
        return grpc_request(model_name, texts, raw).SerializeToString()
    if raw:
        raise ValueError("raw contents are a gRPC form: --raw needs --protocol grpc")
    return json.dumps(request_body(protocol, texts, model_name)).encode("utf-8")


@dataclass(frozen=True)
class Payload:
    body: bytes
    texts: int
    tokens: int


def build_payloads(texts: Sequence[str], protocol: str, batch: int,
                   count_tokens: Callable[[str], int] = count_words, *, model_name: str = "model",
                   raw: bool = False) -> list[Payload]:
    """Serialised requests, one per text group; request i sends payload i % len(payloads).
    `model_name` and `raw` shape gRPC messages only (REST carries the model name in the URL)."""
    counts = {text: count_tokens(text) for text in set(texts)}
    return [Payload(body=encode_request(protocol, group, model_name, raw),
                    texts=len(group), tokens=sum(counts[t] for t in group))
            for group in group_texts(texts, batch)]
