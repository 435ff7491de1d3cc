"""Field types shared by the built-in output schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Confidence = Annotated[float, Field(ge=0.0, le=1.0, description="0..1; higher is surer")]
Seconds = Annotated[float, Field(ge=0.0, description="seconds from the start of the audio")]
Point = Annotated[list[float], Field(min_length=2, max_length=2, description="[x, y] in pixels")]
Box = Annotated[list[Point], Field(min_length=4, max_length=4, description="four corners clockwise from top-left")]
NonEmpty = Annotated[str, Field(min_length=1)]
