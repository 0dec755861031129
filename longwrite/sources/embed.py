"""Dense retrieval through any OpenAI-compatible `/v1/embeddings` server (`--embed-server`).

BM25 finds passages that share the query's words; an embedding model also finds those that
say the same thing in other words ("heat island" and "warmer city centres"). It is optional:
without `--embed-server` retrieval is BM25 alone and works offline.

- The model is the one the server names first in `/v1/models` (vLLM, llama.cpp and TEI serve
  one), unless given as `URL#MODEL`. The URL is read as `--server`'s is (`host:port` is
  enough), and the key is `LONGWRITE_API_KEY`'s.
- A passage is embedded once per model and kept in its index (`vectors`, float32, L2-normed),
  so only passages added since the last run are sent; the first dense query over a large
  index embeds all of it (in batches of `BATCH`).
- Search is exact: the query's vector against every stored one (a matrix product: about a
  millisecond per ten thousand passages of 1,024 dimensions), no approximate index to build.
- Rankings are fused by reciprocal rank (`sources.retrieve`), which needs no calibration
  between BM25 scores and cosines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from longwrite.errors import LongwriteError, one_line

if TYPE_CHECKING:
    from longwrite.sources.store import IndexFile

BATCH = 64
TIMEOUT_S = 120.0


class Embedder:
    """`embed(texts) -> vectors` against one server and model."""

    def __init__(self, url: str) -> None:
        from longwrite.engines.client import (
            MODELS_TIMEOUT_S,
            env_api_key,
            list_models,
            make_client,
            normalise_url,
        )
        from longwrite.redact import public_url

        server, _, model = url.partition("#")
        self.url = normalise_url(server)
        shown = public_url(self.url) or self.url
        self._client = make_client(self.url, env_api_key(), TIMEOUT_S, retries=2)
        try:
            served = [m.id for m in list_models(self._client, shown, MODELS_TIMEOUT_S, 5.0)]
        except LongwriteError:
            self._client.close()
            raise
        except Exception as e:  # noqa: BLE001 - refused, 404, a bad key: the user's to fix
            self._client.close()
            raise LongwriteError(f"--embed-server {shown}: {one_line(e)}") from None
        if not model and not served:
            self._client.close()
            raise LongwriteError(f"--embed-server {shown}: the server lists no model")
        self.model = model or served[0]
        self.shown = shown

    def embed(self, texts: list[str]) -> Any:
        """An (n, d) float32 array of L2-normalised vectors."""
        import numpy as np

        try:
            reply = self._client.embeddings.create(model=self.model, input=texts)
        except Exception as e:  # noqa: BLE001
            raise LongwriteError(f"--embed-server {self.shown}: {one_line(e)}") from None
        data = sorted(reply.data, key=lambda d: d.index)
        if len(data) != len(texts):
            raise LongwriteError(
                f"--embed-server {self.shown}: {len(data)} vectors for {len(texts)} texts"
            )
        vectors = np.asarray([d.embedding for d in data], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def close(self) -> None:
        self._client.close()


def fill_vectors(index: IndexFile, embedder: Embedder) -> int:
    """Embed every passage of `index` that has no vector from this model yet; how many."""
    done = 0
    while rows := index.unembedded(embedder.model, BATCH):
        vectors = embedder.embed([text for _, text in rows])
        index.begin()
        index.put_vectors(embedder.model, [(pid, v.tobytes()) for (pid, _), v in
                                          zip(rows, vectors, strict=True)])  # fmt: skip
        index.commit()
        done += len(rows)
    return done


class DenseIndex:
    """The vectors of one index for one model, loaded once, searched exactly."""

    def __init__(self, index: IndexFile, model: str) -> None:
        import numpy as np

        rows = index.vectors(model)
        self.ids = [pid for pid, _ in rows]
        self.matrix = (
            np.vstack([np.frombuffer(v, dtype=np.float32) for _, v in rows])
            if rows
            else np.zeros((0, 1), dtype=np.float32)
        )

    def search(self, query: Any, limit: int) -> list[tuple[int, float]]:
        """(passage id, cosine) of the `limit` nearest passages."""
        import numpy as np

        if not self.ids or self.matrix.shape[1] != query.shape[0]:
            return []
        scores = self.matrix @ query
        k = min(limit, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[i], float(scores[i])) for i in top]
