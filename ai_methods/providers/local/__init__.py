"""The ``local`` provider: offline engines that run on this machine, nothing downloaded at run time.

Engines load on first use and are shared by the whole process
(``LocalProvider.shared()``), so a test session or a pipeline loads each model
once. CPU work runs in worker threads so the event loop stays free; each engine
serialises its own calls. Per-image signals (OCR, faces, colours) are memoised
by content hash, so ``caption`` and ``labels`` on an image that ``ocr_text``
already read do not read it again.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import Any, Callable, TypeVar

from ai_methods.inputs import AudioInput, ImageInput
from ai_methods.providers.local import colors as _colors
from ai_methods.providers.local import faces as _faces
from ai_methods.providers.local import lexical as _lexical
from ai_methods.providers.local import ocr as _ocr
from ai_methods.providers.local import speech as _speech
from ai_methods.providers.local import visual as _visual
from ai_methods.providers.local import whisper as _whisper

T = TypeVar("T")
_MEMO_SIZE = 1024


class LocalProvider:
    name = "local"
    _shared: "LocalProvider | None" = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._engines: dict[str, Any] = {}
        self._engine_lock = threading.Lock()
        self._memo: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._memo_lock = threading.Lock()
        self._computing: dict[tuple[str, str], threading.Lock] = {}

    @classmethod
    def shared(cls) -> "LocalProvider":
        """The process-wide instance (engines load once per process)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def _engine(self, name: str, factory: Callable[[], T]) -> T:
        with self._engine_lock:
            if name not in self._engines:
                self._engines[name] = factory()
            return self._engines[name]

    def _memoised(self, kind: str, key: str, compute: Callable[[], T]) -> T:
        # ocr_text, caption and labels ask for the same image's OCR at the same moment: the
        # first computes it while the others wait for its answer instead of computing it again.
        with self._memo_lock:
            if (kind, key) in self._memo:
                self._memo.move_to_end((kind, key))
                return self._memo[(kind, key)]
            gate = self._computing.setdefault((kind, key), threading.Lock())
        with gate:
            with self._memo_lock:
                if (kind, key) in self._memo:
                    return self._memo[(kind, key)]
            try:
                value = compute()
                with self._memo_lock:
                    self._memo[(kind, key)] = value
                    while len(self._memo) > _MEMO_SIZE:
                        self._memo.popitem(last=False)
            finally:
                with self._memo_lock:
                    self._computing.pop((kind, key), None)
        return value

    # ----- sync engines (run in threads) ---------------------------------------------

    def ocr_sync(self, image: ImageInput) -> list[_ocr.OcrLine]:
        engine = self._engine("ocr", _ocr.OcrEngine)
        return self._memoised("ocr", image.sha256, lambda: engine.read(image.displayed()))

    def faces_sync(self, image: ImageInput) -> list[_faces.FaceBox]:
        engine = self._engine("faces", _faces.FaceEngine)
        return self._memoised("faces", image.sha256, lambda: engine.detect(image.array()))

    def colours_sync(self, image: ImageInput, k: int = 5) -> list[_colors.Colour]:
        return self._memoised(f"colours{k}", image.sha256, lambda: _colors.dominant_colours(image.displayed(), k))

    def brightness_sync(self, image: ImageInput) -> dict[str, float]:
        """Mean brightness (0..1, Rec. 601 luma) and mean saturation (0..1) of the image."""

        def measure() -> dict[str, float]:
            im = image.rgb()
            im.thumbnail((160, 160))
            hsv = im.convert("HSV")
            import numpy as np

            luma = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
            sat = np.asarray(hsv, dtype=np.float64)[..., 1] / 255.0
            return {"brightness": round(float(luma.mean()), 4), "saturation": round(float(sat.mean()), 4)}

        return self._memoised("brightness", image.sha256, measure)

    def image_vector_sync(self, image: ImageInput) -> Any:
        return _visual.visual_descriptor(image.displayed())

    @staticmethod
    def speech_model() -> str:
        """The id of the speech model a call would use now: Whisper when installed (or named), else pocketsphinx.

        Raises ``ConfigurationError`` when ``AD_ASSETS_WHISPER_MODEL`` names something unusable.
        """
        model = _whisper.configured_model()
        return model.model_id if model else _speech.MODEL_ID

    def transcribe_sync(self, audio: AudioInput) -> _speech.Transcript:
        model = _whisper.configured_model()
        pcm = audio.pcm16k()
        duration = len(pcm) / _speech.SAMPLE_RATE
        if model is None:
            engine = self._engine("speech", _speech.SpeechEngine)
            return _speech.Transcript(engine.transcribe(pcm), duration, _speech.ENGINE, _speech.MODEL_ID, "en-US")
        whisper = self._engine(f"whisper:{model.path}", lambda: _whisper.WhisperEngine(model))
        words, language = whisper.transcribe(pcm)
        return _speech.Transcript(words, duration, _whisper.ENGINE, model.model_id, language)

    # ----- async wrappers, what methods await -------------------------------------------

    async def ocr(self, image: ImageInput) -> list[_ocr.OcrLine]:
        return await asyncio.to_thread(self.ocr_sync, image)

    async def faces(self, image: ImageInput) -> list[_faces.FaceBox]:
        return await asyncio.to_thread(self.faces_sync, image)

    async def colours(self, image: ImageInput, k: int = 5) -> list[_colors.Colour]:
        return await asyncio.to_thread(self.colours_sync, image, k)

    async def brightness(self, image: ImageInput) -> dict[str, float]:
        return await asyncio.to_thread(self.brightness_sync, image)

    async def image_vector(self, image: ImageInput) -> Any:
        return await asyncio.to_thread(self.image_vector_sync, image)

    async def text_vector(self, text: str) -> Any:
        # Cheap for ad-sized text; long documents go to a thread.
        if len(text) < 20_000:
            return _lexical.lexical_vector(text)
        return await asyncio.to_thread(_lexical.lexical_vector, text)

    async def transcribe(self, audio: AudioInput) -> _speech.Transcript:
        return await asyncio.to_thread(self.transcribe_sync, audio)
