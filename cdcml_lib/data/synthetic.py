"""The embedded benchmark: images and 2-second music clips with known valence-arousal (VA).

The study must run offline anywhere, so its default data are generated here. Every item has a
VA point in [0, 1]^2 (``*_cue_va``) that its *cues* encode, and a label (``*_va``) that is that
point plus annotation noise, as human ratings are. A model can only recover the VA through the
cues, which are the ones the affective literature reports; each cue is driven by one VA axis:

Images
    - brightness -> valence; Valdez & Mehrabian 1994 ("Effects of color on emotions", J. Exp.
      Psychol. Gen. 123(4)): brighter colours are rated more pleasant;
    - rounded versus angular shapes -> valence; Bar & Neta 2006 ("Humans prefer curved visual
      objects", Psychol. Sci. 17(8)): sharp-angled objects are liked less;
    - saturation -> arousal; Valdez & Mehrabian 1994: saturation drives arousal most strongly;
    - warm versus cool hue -> arousal; warm hues (red, orange) are rated more arousing than
      cool ones (blue, green) (Valdez & Mehrabian 1994; used as a feature by Machajdik &
      Hanbury 2010, "Affective image classification using features inspired by psychology and
      art theory", ACM MM);
    - visual clutter / complexity (number of shapes, texture frequency and strength) and
      contrast -> arousal (Machajdik & Hanbury 2010, their complexity and contrast features).
    Layout, shape count, positions, sizes, rotations, palettes, gradients and textures are
    random, so no single pixel carries the label.

Music (additive synthesis at 22,050 Hz; Gabrielsson & Lindstrom 2010, "The role of structure in
the musical expression of emotions", Handbook of Music and Emotion; Juslin & Laukka 2004,
"Expression, perception, and induction of musical emotions", J. New Music Res. 33(3); Hevner
1936, "Experimental studies of the elements of expression in music", Am. J. Psychol. 48)
    - mode (major versus minor), consonance versus dissonance and register (high pitch) ->
      valence;
    - tempo, note density (onset rate), loudness and timbre brightness (spectral slope) ->
      arousal.
    Keys, melodies, chord progressions, instruments and percussion are random per song.

Songs are sequences of consecutive clips whose VA drifts smoothly, as DEAM's per-second
annotations do; clips of one song share key, instrument and style, so a split must keep a song
whole. A fraction of items (``conflict_fraction``) has one cue pointing the other way, and the
labels carry Gaussian noise (correlated along a song, as an annotator's drift is), so the task is
learnable but not trivial.

Every random choice of an item is drawn from a generator seeded with (seed, stream, item
index), so an item renders identically alone, in a batch, in any chunk or in any process.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cdcml_lib.audio import CLIP_SAMPLES, CLIP_SECONDS, SR


#: Image cues and the VA axis (0 valence, 1 arousal) that drives each.
IMAGE_CUES = ("brightness", "roundness", "saturation", "warmth", "clutter", "contrast")
IMAGE_CUE_AXIS = (0, 0, 1, 1, 1, 1)
#: Music cues and the VA axis that drives each.
MUSIC_CUES = ("mode", "consonance", "register", "tempo", "density", "loudness", "brightness")
MUSIC_CUE_AXIS = (0, 0, 0, 1, 1, 1, 1)

# Streams of the per-item seeds: (seed, stream, index...). Fixed forever: changing one changes
# every corpus ever generated.
_STREAM_IMAGE_LABELS = 0
_STREAM_SONG_LABELS = 1
_STREAM_IMAGE_RENDER = 2
_STREAM_CLIP_RENDER = 3
_STREAM_SONG_STYLE = 4

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])  # natural minor (Aeolian)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _cue_values(va: np.ndarray, conflict: int, axes: tuple[int, ...]) -> np.ndarray:
    """The value each cue encodes: its VA axis, or the opposite for the one conflicting cue."""
    values = np.array([va[a] for a in axes], dtype=float)
    if conflict >= 0:
        values[conflict] = 1.0 - values[conflict]
    return values


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB (all in [0, 1]); returns an array with a last axis of 3."""
    h = np.mod(h, 1.0) * 6.0
    i = np.floor(h).astype(int) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def _warm_hue(warmth: float) -> float:
    """Hue for a warmth in [0, 1]: 0 is blue (0.62), 1 is red-orange (0.0)."""
    return 0.62 - 0.64 * warmth


@dataclass(frozen=True)
class ImageDesign:
    """Everything drawn for one image, in resolution-free units (coordinates in [0, 1]).

    ``shapes`` maps x, y, radius, rotation, vertices, depth, aspect (arrays over the shapes,
    painted in order) and rgb ([n_shapes, 3]) to their values.
    """

    cues: dict
    bg_hsv: tuple
    gradient: tuple           # (angle, amplitude)
    texture: tuple            # (kind, frequency, angle, phase, amplitude)
    shapes: dict


def design_image(va: np.ndarray, conflict: int, seed: int, index: int) -> ImageDesign:
    """Draw the scene of one image from its cue VA (seeded by (seed, index) alone)."""
    rng = _rng(seed, _STREAM_IMAGE_RENDER, index)
    cue = dict(zip(IMAGE_CUES, _cue_values(va, conflict, IMAGE_CUE_AXIS)))
    g = rng.normal(0, 1, size=3)
    hue = _warm_hue(cue["warmth"]) + 0.035 * g[0]
    sat = min(max(0.08 + 0.8 * cue["saturation"] + 0.06 * g[1], 0.0), 1.0)
    val = min(max(0.12 + 0.78 * cue["brightness"] + 0.06 * g[2], 0.03), 1.0)
    gradient = (rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.18))
    # Clutter: stronger, finer textures and more, smaller shapes.
    texture = (
        int(rng.integers(3)),
        2.0 + 14.0 * cue["clutter"] * rng.uniform(0.7, 1.3),
        rng.uniform(0, np.pi),
        rng.uniform(0, 2 * np.pi),
        0.02 + 0.14 * cue["clutter"],
    )
    n = int(np.clip(np.round(1 + 10 * cue["clutter"] + rng.normal(0, 1.2)), 1, 12))
    contrast = 0.08 + 0.55 * cue["contrast"]
    roundness = np.clip(cue["roundness"] + rng.normal(0, 0.08, n), 0, 1)
    sign = rng.choice([-1.0, 1.0], size=n)
    sign = np.where((val + sign * contrast < 0) | (val + sign * contrast > 1), -sign, sign)
    shape_val = np.clip(val + sign * contrast + rng.normal(0, 0.03, n), 0, 1)
    shape_sat = np.clip(sat + rng.normal(0, 0.08, n), 0, 1)
    shape_hue = hue + rng.choice([0.0, 0.06, -0.06, 0.5], size=n, p=[0.4, 0.2, 0.2, 0.2])
    shape_hue = shape_hue + rng.normal(0, 0.02, n)
    shapes = dict(
        x=rng.uniform(0.1, 0.9, n), y=rng.uniform(0.1, 0.9, n),
        radius=rng.uniform(0.09, 0.22, n) * (1.15 - 0.55 * cue["clutter"]),
        rotation=rng.uniform(0, 2 * np.pi, n),
        vertices=rng.integers(3, 7, n),
        # Spike depth 0 draws an ellipse, 0.6 a sharp star: Bar & Neta's angularity.
        depth=0.6 * (1.0 - roundness) ** 1.2,
        aspect=np.where(roundness > 0.5, rng.uniform(0.7, 1.0, n), 1.0),
        rgb=_hsv_to_rgb(shape_hue, shape_sat, shape_val),
    )
    return ImageDesign(cue, (hue, sat, val), gradient, texture, shapes)


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in [0, 1] (y, x), cached per size."""
    if size not in _GRIDS:
        c = (np.arange(size) + 0.5) / size
        _GRIDS[size] = tuple(np.meshgrid(c, c, indexing="ij"))
    return _GRIDS[size]


def draw_image(design: ImageDesign, size: int, noise_rng: np.random.Generator) -> np.ndarray:
    """Render a design as uint8 [size, size, 3]."""
    y, x = _grid(size)
    hue, sat, val = design.bg_hsv
    angle, amp = design.gradient
    value = val + amp * ((np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5)) * 2)
    kind, freq, t_angle, phase, t_amp = design.texture
    u = np.cos(t_angle) * x + np.sin(t_angle) * y
    if kind == 0:    # stripes
        tex = np.sin(2 * np.pi * freq * u + phase)
    elif kind == 1:  # checks
        v = -np.sin(t_angle) * x + np.cos(t_angle) * y
        tex = np.sin(2 * np.pi * freq * u + phase) * np.sin(2 * np.pi * freq * v)
    else:            # ripples
        tex = np.sin(2 * np.pi * freq * np.hypot(x - 0.5, y - 0.5) * 1.5 + phase)
    value = np.clip(value + t_amp * tex, 0, 1)
    # HSV -> RGB is linear in V at fixed hue and saturation.
    img = value[..., None] * _hsv_to_rgb(np.array(hue), np.array(sat), np.array(1.0))
    sh = design.shapes
    for k in range(len(sh["x"])):  # painter's order; each shape only within its bounding box
        cx, cy, r = sh["x"][k], sh["y"][k], sh["radius"][k]
        r0, r1 = max(int((cy - r) * size) - 1, 0), min(int((cy + r) * size) + 2, size)
        c0, c1 = max(int((cx - r) * size) - 1, 0), min(int((cx + r) * size) + 2, size)
        dx = x[r0:r1, c0:c1] - cx
        dy = (y[r0:r1, c0:c1] - cy) / sh["aspect"][k]
        turns = (np.arctan2(dy, dx) + sh["rotation"][k]) / (2 * np.pi)
        frac = np.mod(turns * sh["vertices"][k], 1)
        mid_edge = 1.0 - np.abs(2 * frac - 1)  # 0 at a vertex, 1 mid-edge
        boundary = r * (1.0 - sh["depth"][k] * mid_edge)
        alpha = np.clip((boundary - np.hypot(dx, dy)) * size + 0.5, 0, 1)[..., None]
        patch = img[r0:r1, c0:c1]
        patch += alpha * (sh["rgb"][k] - patch)  # anti-aliased one-pixel edge
    img += noise_rng.normal(0, 0.015, img.shape)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Music
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SongStyle:
    """What all clips of one song share: key, instrument, melody habits, percussion."""

    tonic: int                # pitch class 0..11 (0 = C)
    register_offset: float    # semitones
    harmonic_profile: np.ndarray  # instrument colour, multiplied by the brightness slope
    decay: float              # note decay as a fraction of the note length
    step_probs: np.ndarray    # melody steps -2..+2 scale degrees
    progression: np.ndarray   # scale degrees of the chord roots
    percussion: float         # level of the percussion track
    mode_bias: float          # shifts the major/minor threshold per song


def song_style(seed: int, song: int) -> SongStyle:
    """Draw the style of song number ``song`` (seeded by (seed, song) alone)."""
    rng = _rng(seed, _STREAM_SONG_STYLE, song)
    h = np.arange(1, 17)
    instrument = int(rng.integers(4))
    profile = [np.ones(16),                                   # saw-like
               np.where(h % 2 == 1, 1.0, 0.15),               # clarinet-like (odd harmonics)
               np.exp(-0.15 * (h - 1)),                       # flute-like
               1.0 + 0.8 * np.sin(h * rng.uniform(0.5, 2.0)) ** 2][instrument]  # formant-ish
    steps = rng.dirichlet(np.array([1.0, 3.0, 1.5, 3.0, 1.0]))
    return SongStyle(
        tonic=int(rng.integers(12)),
        register_offset=float(rng.uniform(-3, 3)),
        harmonic_profile=np.asarray(profile, dtype=float),
        decay=float(rng.uniform(0.25, 0.9)),
        step_probs=steps,
        progression=rng.choice([0, 3, 4, 5], size=4, p=[0.4, 0.2, 0.25, 0.15]),
        percussion=float(rng.choice([0.0, rng.uniform(0.4, 1.0)], p=[0.3, 0.7])),
        mode_bias=float(rng.uniform(-0.08, 0.08)),
    )


@dataclass(frozen=True)
class ClipDesign:
    """Everything drawn for one clip."""

    cues: dict
    major: bool
    bpm: float
    notes_per_beat: int
    gain: float               # linear peak gain (loudness)
    slope: float              # harmonic amplitude ~ h^-slope (timbre brightness)
    melody_midi: np.ndarray   # one pitch per note slot (nan = rest)
    chord_midi: np.ndarray    # [n_chords, 3]
    dissonance: float         # level of the voice a semitone or tritone off the melody
    dissonant_interval: int
    start_offset: float       # seconds into the first note


def design_clip(va: np.ndarray, conflict: int, style: SongStyle, seed: int, song: int,
                k: int) -> ClipDesign:
    """Draw one clip from its cue VA and its song's style (seeded by (seed, song, k))."""
    rng = _rng(seed, _STREAM_CLIP_RENDER, song, k)
    cue = dict(zip(MUSIC_CUES, _cue_values(va, conflict, MUSIC_CUE_AXIS)))
    major = bool(cue["mode"] + style.mode_bias > 0.5)
    scale = _MAJOR if major else _MINOR
    bpm = float(np.clip(62 + 110 * cue["tempo"] + rng.normal(0, 4), 50, 190))
    npb = int(np.clip(np.round(1 + 3 * cue["density"] + rng.normal(0, 0.3)), 1, 4))
    note_s = 60.0 / bpm / npb
    n_notes = int(np.ceil(CLIP_SECONDS / note_s)) + 1
    # Register moves the melody's centre by scale degrees, so every note stays in the key.
    tonic_midi = 48 + style.tonic
    target = 55 + style.register_offset + 16 * cue["register"]
    centre = int(np.round((target - tonic_midi) * 7 / 12))
    walk = np.cumsum(rng.choice(np.arange(-2, 3), size=n_notes, p=style.step_probs))
    walk = walk + int(rng.integers(-2, 3))
    walk = 4 - np.abs(np.mod(walk + 4, 16) - 8)  # reflect into -4..4 degrees of the centre
    octave, degree = np.divmod(centre + walk, 7)
    melody = (tonic_midi + 12 * octave + scale[degree]).astype(float)
    rests = rng.random(n_notes) < 0.1
    rests[0] = False  # never an all-rest melody
    melody = np.where(rests, np.nan, melody)
    beats = CLIP_SECONDS * bpm / 60
    n_chords = max(1, int(np.ceil(beats / 4)) + 1)
    start = int(rng.integers(len(style.progression)))
    roots = style.progression[(start + np.arange(n_chords)) % len(style.progression)]
    triad = roots[:, None] + np.array([0, 2, 4])[None, :]
    oct_t, deg_t = np.divmod(triad, 7)
    chords = 40 + (style.tonic - 4) % 12 + 12 * oct_t + scale[deg_t]  # E2..D#3 on the tonic
    return ClipDesign(
        cues=cue, major=major, bpm=bpm, notes_per_beat=npb,
        gain=float(10 ** ((-22 + 20 * cue["loudness"] + rng.normal(0, 0.7)) / 20)),
        slope=float(2.6 - 1.9 * cue["brightness"]),
        melody_midi=melody, chord_midi=chords,
        dissonance=float(0.7 * (1 - cue["consonance"]) ** 1.5),
        dissonant_interval=int(rng.choice([1, 6])),
        start_offset=float(rng.uniform(0, note_s)),
    )


def _midi_hz(m: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


_TABLE = 2048  # a power of two: phases wrap with a bitwise and
_HARMONICS = np.sin(2 * np.pi * np.outer(np.arange(1, 17), np.arange(_TABLE) / _TABLE))


def _wavetable(profile: np.ndarray, slope: float, max_hz: float) -> np.ndarray:
    """One cycle of an additive tone: sum_h profile[h] h^-slope sin(2 pi h t), below Nyquist."""
    h = np.arange(1, len(profile) + 1)
    amp = profile * h ** (-slope) * (h * max_hz < 0.45 * SR)
    table = amp @ _HARMONICS[: len(profile)]
    return (table / np.max(np.abs(table))).astype(np.float32)


def _envelope(n: int, attack_s: float, decay_s: float) -> np.ndarray:
    """Attack ramp, exponential decay and an 8 ms release, over one note of n samples."""
    tau = np.arange(n, dtype=np.float32) / SR
    env = np.minimum(tau / attack_s, 1.0) * np.exp(-tau / decay_s)
    release = np.minimum((n - 1 - np.arange(n)) / (0.008 * SR), 1.0)
    return (env * release).astype(np.float32)


def _voice(pitches: np.ndarray, note_n: int, offset_n: int, table: np.ndarray,
           env: np.ndarray) -> np.ndarray:
    """A sequence of equal-length notes (note_n samples; nan = rest) from a wavetable.

    Notes are laid out as rows of a [n_notes, note_n] grid, so the envelope and the sample
    clock are computed once per voice; the clip starts offset_n samples into the first note.
    """
    n_notes = -(-(CLIP_SAMPLES + offset_n) // note_n)
    p = pitches[:n_notes]
    on = ~np.isnan(p)
    step = _midi_hz(np.where(on, p, 60.0)) * _TABLE / SR  # table steps per sample
    idx = (np.outer(step, np.arange(note_n, dtype=np.float64))).astype(np.int64) & (_TABLE - 1)
    wave = table[idx] * (env[None, :] * on[:, None].astype(np.float32))
    return wave.reshape(-1)[offset_n: offset_n + CLIP_SAMPLES]


def draw_clip(design: ClipDesign, style: SongStyle, noise_rng: np.random.Generator) -> np.ndarray:
    """Render a clip as float32 [44100] with peak = its loudness gain (<= 1)."""
    note_n = int(round(60.0 / design.bpm / design.notes_per_beat * SR))
    offset_n = int(design.start_offset * SR) % note_n
    lead = _wavetable(style.harmonic_profile, design.slope, np.nanmax(_midi_hz(design.melody_midi)))
    pad = _wavetable(style.harmonic_profile[:6], design.slope + 0.8, 400.0)
    # Brighter (more aroused) clips also have sharper attacks.
    env = _envelope(note_n, 0.004 + 0.03 * (1 - design.cues["brightness"]),
                    max(style.decay * note_n / SR, 0.05))
    out = _voice(design.melody_midi, note_n, offset_n, lead, env)
    if design.dissonance > 0.01:
        off = design.melody_midi + design.dissonant_interval
        out += design.dissonance * _voice(off, note_n, offset_n, lead, env)
    chord_n = 4 * design.notes_per_beat * note_n
    pad_env, bass_env = _envelope(chord_n, 0.05, 1.5), _envelope(chord_n, 0.02, 0.8)
    for v in range(3):
        out += 0.35 * _voice(design.chord_midi[:, v].astype(float), chord_n, 0, pad, pad_env)
    out += 0.4 * _voice(design.chord_midi[:, 0] - 12.0, chord_n, 0, pad, bass_env)
    if style.percussion > 0:
        # Noise bursts on every beat: onset rate follows tempo; level follows density.
        beat_n = design.notes_per_beat * note_n
        burst = np.exp(-np.arange(beat_n) / (0.03 * SR)).astype(np.float32)
        burst = np.tile(burst, -(-(CLIP_SAMPLES + offset_n) // beat_n))
        burst = burst[offset_n: offset_n + CLIP_SAMPLES]
        hiss = np.diff(noise_rng.standard_normal(CLIP_SAMPLES + 1, dtype=np.float32))
        out += style.percussion * (0.3 + 0.7 * design.cues["density"]) * burst * hiss
    out += noise_rng.normal(0, 1e-3, CLIP_SAMPLES).astype(np.float32)
    out *= design.gain / np.max(np.abs(out))
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------

def _ids(prefix: str, n: int, width: int) -> list[str]:
    w = max(width, len(str(max(n - 1, 0))))
    return [f"{prefix}{i:0{w}d}" for i in range(n)]


@dataclass
class EmbeddedCorpus:
    """The embedded benchmark: labels in memory, pixels and audio rendered on demand.

    Render any subset in any order with ``render_images(idx, size)`` and ``render_clips(idx)``;
    the result of an item depends only on (seed, item), never on the batch, so large corpora
    render in chunks or in parallel processes.

    ``*_va`` are the (noisy) labels, ``*_cue_va`` the VA the cues encode; ``clip_ids`` are
    ``"<song>-<k>"`` (IMEMNet's style) with k = ``clip_index``. The last three fields are the
    cue that conflicts per item (an index into IMAGE_CUES / MUSIC_CUES, -1 for none) and each
    clip's song as an integer; they default to "no conflict" and to ``clip_song``.
    """

    image_ids: list[str]
    image_va: np.ndarray
    image_cue_va: np.ndarray
    song_ids: list[str]
    clip_ids: list[str]
    clip_song: list[str]
    clip_index: np.ndarray
    clip_va: np.ndarray
    clip_cue_va: np.ndarray
    seed: int
    image_conflict: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    clip_conflict: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    clip_song_index: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    def __post_init__(self) -> None:
        if len(self.image_conflict) == 0:
            self.image_conflict = np.full(len(self.image_ids), -1)
        if len(self.clip_conflict) == 0:
            self.clip_conflict = np.full(len(self.clip_ids), -1)
        if len(self.clip_song_index) == 0:
            position = {s: i for i, s in enumerate(self.song_ids)}
            self.clip_song_index = np.array([position[s] for s in self.clip_song], dtype=int)

    def image_design(self, i: int) -> ImageDesign:
        """The scene drawn for image i (its cues, colours and shapes)."""
        return design_image(self.image_cue_va[i], int(self.image_conflict[i]), self.seed, i)

    def song_style(self, song: int) -> SongStyle:
        """Key, instrument and habits shared by the clips of song number ``song``."""
        return song_style(self.seed, song)

    def clip_design(self, j: int) -> ClipDesign:
        """The notes and cue settings drawn for clip j."""
        s, k = int(self.clip_song_index[j]), int(self.clip_index[j])
        return design_clip(self.clip_cue_va[j], int(self.clip_conflict[j]),
                           song_style(self.seed, s), self.seed, s, k)

    def render_images(self, idx, size: int) -> np.ndarray:
        """uint8 [len(idx), size, size, 3]."""
        idx = np.atleast_1d(np.asarray(idx, dtype=int))
        _check_index(idx, len(self.image_ids), "image")
        if int(size) < 8:
            raise ValueError(f"image size {size} is too small to draw shapes; use 8 or more")
        out = np.empty((len(idx), size, size, 3), np.uint8)
        for row, i in enumerate(idx):
            noise = _rng(self.seed, _STREAM_IMAGE_RENDER, i, size)
            out[row] = draw_image(self.image_design(int(i)), int(size), noise)
        return out

    def render_clips(self, idx) -> np.ndarray:
        """float32 [len(idx), 44100] at 22,050 Hz, peak <= 1."""
        idx = np.atleast_1d(np.asarray(idx, dtype=int))
        _check_index(idx, len(self.clip_ids), "clip")
        out = np.empty((len(idx), CLIP_SAMPLES), np.float32)
        for row, j in enumerate(idx):
            s, k = int(self.clip_song_index[j]), int(self.clip_index[j])
            style = song_style(self.seed, s)
            design = design_clip(self.clip_cue_va[j], int(self.clip_conflict[j]), style,
                                 self.seed, s, k)
            out[row] = draw_clip(design, style, _rng(self.seed, _STREAM_CLIP_RENDER, s, k, 1))
        return out


def _check_index(idx: np.ndarray, n: int, what: str) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)][0]
        raise IndexError(f"{what} index {bad} is out of range: the corpus has {n} {what}s "
                         f"(valid 0..{n - 1})")


def _song_trajectory(rng: np.random.Generator, n: int) -> np.ndarray:
    """A smooth VA path over n consecutive clips: a song centre plus slow sinusoidal drift."""
    centre = rng.beta(1.5, 1.5, size=2)
    k = np.arange(n)[:, None]
    amp = rng.uniform(0.04, 0.14, size=2)
    period = rng.uniform(1.5, 3.0, size=2) * max(n, 4)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    return np.clip(centre + amp * np.sin(2 * np.pi * k / period + phase), 0.02, 0.98)


def _conflicts(rng: np.random.Generator, n: int, n_cues: int, fraction: float) -> np.ndarray:
    which = rng.integers(n_cues, size=n)
    return np.where(rng.random(n) < fraction, which, -1)


def make_corpus(n_songs: int, clips_per_song_min: int, clips_per_song_max: int, n_images: int,
                label_noise: float, seed: int, conflict_fraction: float = 0.15,
                noise_correlation: float = 0.8) -> EmbeddedCorpus:
    """Draw the labels of an embedded corpus (rendering happens later, on demand).

    ``label_noise`` is the standard deviation of the Gaussian noise between the cue VA and the
    label, per axis (labels are then clipped to [0, 1]). Along a song the noise is an AR(1)
    process with lag-one correlation ``noise_correlation``, as one annotator's drift is.
    ``conflict_fraction`` of the items have one randomly chosen cue pointing the other way.
    """
    checks = [
        (n_songs >= 1, "n_songs must be at least 1"),
        (n_images >= 1, "n_images must be at least 1"),
        (1 <= clips_per_song_min <= clips_per_song_max,
         "need 1 <= clips_per_song_min <= clips_per_song_max"),
        (0 <= label_noise < 0.5, "label_noise must be in [0, 0.5)"),
        (0 <= conflict_fraction <= 1, "conflict_fraction must be in [0, 1]"),
        (0 <= noise_correlation < 1, "noise_correlation must be in [0, 1)"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(f"make_corpus (dataset section of params/*.yaml): {msg}; got "
                             f"n_songs={n_songs}, clips_per_song={clips_per_song_min}.."
                             f"{clips_per_song_max}, n_images={n_images}, "
                             f"label_noise={label_noise}")
    rng = _rng(seed, _STREAM_IMAGE_LABELS)
    image_cue = np.clip(rng.beta(1.5, 1.5, size=(n_images, 2)), 0.02, 0.98)
    image_va = np.clip(image_cue + rng.normal(0, label_noise, size=(n_images, 2)), 0, 1)
    image_conflict = _conflicts(rng, n_images, len(IMAGE_CUES), conflict_fraction)

    rng = _rng(seed, _STREAM_SONG_LABELS)
    song_ids = _ids("s", n_songs, 4)
    cue, noise, song_index, index = [], [], [], []
    rho = noise_correlation
    for s in range(n_songs):
        n = int(rng.integers(clips_per_song_min, clips_per_song_max + 1))
        cue.append(_song_trajectory(rng, n))
        eps = rng.normal(0, label_noise, size=(n, 2))
        e = np.empty((n, 2))
        e[0] = eps[0]
        for k in range(1, n):  # AR(1) with stationary standard deviation label_noise
            e[k] = rho * e[k - 1] + np.sqrt(1 - rho ** 2) * eps[k]
        noise.append(e)
        song_index += [s] * n
        index += list(range(n))
    clip_cue = np.concatenate(cue)
    clip_va = np.clip(clip_cue + np.concatenate(noise), 0, 1)
    song_index = np.array(song_index)
    clip_conflict = _conflicts(rng, len(clip_cue), len(MUSIC_CUES), conflict_fraction)
    return EmbeddedCorpus(
        image_ids=_ids("img", n_images, 5), image_va=image_va, image_cue_va=image_cue,
        song_ids=song_ids,
        clip_ids=[f"{song_ids[s]}-{k}" for s, k in zip(song_index, index)],
        clip_song=[song_ids[s] for s in song_index], clip_index=np.array(index),
        clip_va=clip_va, clip_cue_va=clip_cue, seed=int(seed),
        image_conflict=image_conflict, clip_conflict=clip_conflict, clip_song_index=song_index,
    )


# --------------------------------------------------------------------------------------------
# Linear baselines: the task is not linearly trivial
# --------------------------------------------------------------------------------------------

def audio_statistics(clips: np.ndarray) -> np.ndarray:
    """Simple raw-audio statistics per clip: RMS, zero-crossing rate, spectral centroid,
    roll-off, flatness and flux (means and standard deviations over 1,024-sample frames)."""
    frames = clips[:, : (CLIP_SAMPLES // 1024) * 1024].reshape(len(clips), -1, 1024)
    mag = np.abs(np.fft.rfft(frames * np.hanning(1024), axis=-1)) + 1e-9
    freqs = np.fft.rfftfreq(1024, 1 / SR)
    power = mag ** 2
    rms = np.sqrt(np.mean(frames ** 2, axis=-1))
    zcr = np.mean(np.abs(np.diff(np.sign(frames), axis=-1)) > 0, axis=-1)
    centroid = (power * freqs).sum(-1) / power.sum(-1)
    cum = np.cumsum(power, axis=-1) / power.sum(-1, keepdims=True)
    rolloff = freqs[np.argmax(cum >= 0.85, axis=-1)]
    flatness = np.exp(np.mean(np.log(mag), -1)) / np.mean(mag, -1)
    flux = np.concatenate([np.zeros((len(clips), 1)),
                           np.sqrt((np.diff(mag, axis=1).clip(0) ** 2).sum(-1))], axis=1)
    stats = [rms, zcr, centroid, rolloff, flatness, flux]
    return np.stack([f(s, axis=1) for s in stats for f in (np.mean, np.std)], axis=1)


def downsampled_spectrogram(clips: np.ndarray, n_bands: int = 24,
                            n_segments: int = 8) -> np.ndarray:
    """Log band energies: 1,024-sample frames, n_bands log-spaced bands (60 Hz - 11 kHz),
    averaged into n_segments time segments; flattened to [n_clips, n_bands * n_segments]."""
    frames = clips[:, : (CLIP_SAMPLES // 1024) * 1024].reshape(len(clips), -1, 1024)
    power = np.abs(np.fft.rfft(frames * np.hanning(1024), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(1024, 1 / SR)
    edges = np.geomspace(60, SR / 2, n_bands + 1)
    band = np.clip(np.searchsorted(edges, freqs) - 1, -1, n_bands)
    bands = np.stack([power[..., band == b].sum(-1) for b in range(n_bands)], axis=-1)
    seg = np.array_split(np.arange(bands.shape[1]), n_segments)
    pooled = np.stack([bands[:, s].mean(1) for s in seg], axis=1)
    return np.log(pooled + 1e-8).reshape(len(clips), -1)


def _ridge_scores(x_tr, y_tr, x_te, y_te) -> tuple[float, float]:
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15)))
    pred = np.clip(model.fit(x_tr, y_tr).predict(x_te), 0, 1)
    return tuple(np.mean((pred - y_te) ** 2, axis=0))


def linear_baselines(corpus: EmbeddedCorpus, image_size: int = 32, n_train: int | None = None,
                     seed: int = 0) -> pd.DataFrame:
    """Held-out VA error of linear models on raw inputs, beside the cue VA's own error.

    Images: ridge regression on raw pixels (``image_size``^2 x 3). Music: ridge on simple audio
    statistics and on a downsampled log spectrogram, split by song (clips of a test song are
    never fitted). The reference rows score ``*_cue_va`` and the training mean against the test
    labels. ``n_train`` is the number of training images and (whole songs added until at least
    that many) training clips; default three quarters of each modality.
    Columns: modality, predictor, valence_mse, arousal_mse.
    """
    rng = np.random.default_rng(seed)
    rows = []

    def add(modality, predictor, scores):
        rows.append(dict(modality=modality, predictor=predictor, valence_mse=float(scores[0]),
                         arousal_mse=float(scores[1])))

    n_img = len(corpus.image_ids)
    k = n_train if n_train is not None else (3 * n_img) // 4
    if not 2 <= k < n_img:
        raise ValueError(f"n_train={n_train} must leave images on both sides (corpus has {n_img})")
    order = rng.permutation(n_img)
    tr, te = order[:k], order[k:]
    pixels = corpus.render_images(np.arange(n_img), image_size).reshape(n_img, -1) / 255.0
    y = corpus.image_va
    add("image", "ridge_raw_pixels", _ridge_scores(pixels[tr], y[tr], pixels[te], y[te]))
    add("image", "train_mean", np.mean((y[tr].mean(0) - y[te]) ** 2, axis=0))
    add("image", "cue_va", np.mean((corpus.image_cue_va[te] - y[te]) ** 2, axis=0))

    n_clips = len(corpus.clip_ids)
    songs = rng.permutation(len(corpus.song_ids))
    target = n_train if n_train is not None else (3 * n_clips) // 4
    counts = np.bincount(corpus.clip_song_index, minlength=len(corpus.song_ids))
    n_songs_tr = int(np.searchsorted(np.cumsum(counts[songs]), target) + 1)
    if n_songs_tr >= len(songs):
        raise ValueError(f"n_train={n_train} leaves no test song (corpus has {n_clips} clips)")
    in_train = np.isin(corpus.clip_song_index, songs[:n_songs_tr])
    tr, te = np.flatnonzero(in_train), np.flatnonzero(~in_train)
    clips = corpus.render_clips(np.arange(n_clips))
    y = corpus.clip_va
    for name, feats in (("ridge_audio_statistics", audio_statistics(clips)),
                        ("ridge_spectrogram", downsampled_spectrogram(clips))):
        add("music", name, _ridge_scores(feats[tr], y[tr], feats[te], y[te]))
    add("music", "train_mean", np.mean((y[tr].mean(0) - y[te]) ** 2, axis=0))
    add("music", "cue_va", np.mean((corpus.clip_cue_va[te] - y[te]) ** 2, axis=0))
    return pd.DataFrame(rows, columns=["modality", "predictor", "valence_mse", "arousal_mse"])
