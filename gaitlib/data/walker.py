"""A 3D articulated walker rendered to binary silhouettes (the synthetic dataset's body).

Identity lives in a :class:`Body`: segment proportions, widths and limb thickness, and
walking dynamics (cadence, joint-angle curves as subject-specific Fourier harmonics of
the gait phase, arm swing, sway, trunk posture). Absolute height is drawn too but carries
no identity, since pretreatment rescales every frame to height 64.

Body parts are 3D capsules (segments with a radius at each end) plus convex solids (coat
skirt, bags) given as point clouds. After rotating the walker by the view angle the
projection is orthographic, so a capsule becomes a 2D tapered stadium: the convex hull of
two discs. Rasterising it is ``cv2.fillConvexPoly`` on an exact hull polygon. That is
about 100x faster on CPU than a per-pixel signed-distance rasteriser (measured: ~0.5 s vs
~4 ms per 45-frame sequence), which is what makes the default dataset cheap to build.

Coordinates: metres, x forward (walking direction), y to the walker's left, z up.
View ``v`` degrees: 0 = walking towards the camera, 90 = side view, 180 = walking away.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

_N_HARM = 4
_SHIFT = 3  # cv2 sub-pixel bits: polygon vertices in 1/8 px


def _template(keys: list[tuple[float, float]]) -> np.ndarray:
    """Fourier coefficients [c0, a1, b1, ..] of a periodic curve given by (% cycle, deg) keys."""
    pct, deg = np.array(keys, dtype=float).T
    phase = np.linspace(0, 100, 128, endpoint=False)
    curve = np.interp(phase, pct, deg)
    spec = np.fft.rfft(curve) / len(curve)
    coef = [spec[0].real]
    for k in range(1, _N_HARM + 1):
        coef += [2 * spec[k].real, -2 * spec[k].imag]
    return np.radians(coef)


# Population-mean sagittal joint curves over one gait cycle (0 = ipsilateral heel strike),
# shaped after textbook normal-gait plots; subjects perturb their harmonics.
HIP = _template([(0, 25), (10, 22), (30, 5), (50, -12), (60, -8), (75, 15), (87, 27), (100, 25)])
KNEE = _template([(0, 3), (15, 18), (35, 5), (45, 5), (60, 38), (72, 62), (85, 35), (95, 5),
                  (100, 3)])
ANKLE = _template([(0, 0), (8, -6), (40, 10), (55, 0), (62, -18), (75, 0), (100, 0)])


def fourier(coef: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Evaluate c0 + sum_k a_k cos(k phase) + b_k sin(k phase)."""
    out = np.full_like(phase, coef[0], dtype=float)
    for k in range(1, (len(coef) - 1) // 2 + 1):
        out += coef[2 * k - 1] * np.cos(k * phase) + coef[2 * k] * np.sin(k * phase)
    return out


@dataclass(frozen=True)
class Body:
    """One subject's identity. Lengths in metres, angles in radians, cycle in frames."""

    height: float
    head_r: float
    neck: float
    torso: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    foot: float
    shoulder_w: float  # half width, joint to joint
    hip_w: float
    limb_r: float  # limb thickness scale
    torso_r: float  # half depth of the trunk
    belly: float  # forward bulge of the front of the trunk
    cycle: float
    hip: np.ndarray = field(repr=False)
    knee: np.ndarray = field(repr=False)
    ankle: np.ndarray = field(repr=False)
    arm_swing: float
    arm_lag: float
    elbow0: float
    elbow_k: float
    arm_abd: float
    leg_abd: float
    lean: float
    lean_osc: float
    head_pitch: float
    sway: float
    yaw: float
    asym_arm: float = 1.0  # left/right arm swing ratio (people are not symmetric)
    asym_leg: float = 1.0  # left/right knee flexion ratio
    shoulder_tilt: float = 0.0  # left shoulder higher by this (m)


def random_body(rng: np.random.Generator, spread: float = 1.0) -> Body:
    """Draw a subject; ``spread`` scales every between-subject deviation from the mean body."""
    def var(sd: float) -> float:  # multiplicative deviation
        return float(np.exp(spread * rng.normal(0, sd)))

    def add(sd: float) -> float:
        return float(spread * rng.normal(0, sd))

    h = float(rng.uniform(1.55, 1.9))

    def harm(base: np.ndarray, amp_sd: float, sds: tuple[float, ...]) -> np.ndarray:
        coef = base.copy()
        coef[1:] *= var(amp_sd)
        coef[0] += np.radians(add(sds[0]))
        for k in range(1, _N_HARM + 1):
            coef[2 * k - 1 : 2 * k + 1] += np.radians([add(sds[min(k, len(sds) - 1)])] * 2) \
                * rng.normal(0, 1, 2)
        return coef

    return Body(
        height=h, head_r=0.05 * h * var(0.08), neck=0.045 * h * var(0.2),
        torso=0.29 * h * var(0.06), upper_arm=0.18 * h * var(0.06), forearm=0.19 * h * var(0.06),
        thigh=0.245 * h * var(0.05), shin=0.245 * h * var(0.05), foot=0.125 * h * var(0.07),
        shoulder_w=0.12 * h * var(0.08), hip_w=0.055 * h * var(0.1), limb_r=var(0.14),
        torso_r=0.06 * h * var(0.12), belly=0.02 * h * var(0.5),
        cycle=float(np.clip(27 + add(2.5), 20, 36)),
        hip=harm(HIP, 0.13, (4, 3, 1.5, 1)), knee=harm(KNEE, 0.12, (3, 3, 2, 1)),
        ankle=harm(ANKLE, 0.2, (3, 2, 1, 1)),
        arm_swing=np.radians(22) * var(0.35), arm_lag=np.radians(add(12)),
        elbow0=np.radians(max(0.0, 14 + add(8))), elbow_k=max(0.0, 0.45 + add(0.25)),
        arm_abd=np.radians(6 + add(3)), leg_abd=np.radians(2 + add(1.5)),
        lean=np.radians(3 + add(4)), lean_osc=np.radians(1.5) * var(0.5),
        head_pitch=np.radians(add(7)), sway=0.02 * var(0.4), yaw=np.radians(6) * var(0.4),
        asym_arm=var(0.2), asym_leg=var(0.08), shoulder_tilt=add(0.012) * h,
    )


def vary_walk(body: Body, rng: np.random.Generator, amount: float = 1.0) -> Body:
    """The same subject on another walk: small changes of speed, stride, swing and posture."""
    def var(sd: float) -> float:
        return float(np.exp(amount * rng.normal(0, sd)))

    hip = body.hip.copy()
    hip[1:] *= var(0.05)
    knee = body.knee.copy()
    knee[1:] *= var(0.05)
    return replace(body, cycle=body.cycle * var(0.05), hip=hip, knee=knee,
                   arm_swing=body.arm_swing * var(0.15),
                   lean=body.lean + np.radians(amount * rng.normal(0, 1.5)),
                   head_pitch=body.head_pitch + np.radians(amount * rng.normal(0, 3)))


@dataclass(frozen=True)
class Outfit:
    """What a sequence's condition adds: a coat and/or a bag."""

    coat: bool = False
    coat_thick: float = 0.0  # extra radius on trunk and arms (m)
    coat_len: float = 0.0  # hem distance below the hip joints (m)
    coat_flare: float = 0.0  # extra hem radius around each leg (m)
    bag: str = ""  # "", "shoulder", "backpack", "handbag"
    bag_side: int = 1  # +1 left, -1 right
    bag_size: tuple[float, float, float] = (0.0, 0.0, 0.0)  # depth, width, height (m)


def _rot_z(v: np.ndarray, ang: np.ndarray) -> np.ndarray:
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    return np.stack([c[:, 0] * v[:, 0] - s[:, 0] * v[:, 1], s[:, 0] * v[:, 0] + c[:, 0] * v[:, 1],
                     v[:, 2]], axis=1)


def _dir(flex: np.ndarray, side: float, abd: float | np.ndarray) -> np.ndarray:
    """Unit vector hanging down, flexed forward by ``flex`` and out to ``side`` by ``abd``."""
    d = np.stack([np.sin(flex), np.full_like(flex, side * np.sin(abd)), -np.cos(flex)], axis=1)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def pose(body: Body, phase: np.ndarray, outfit: Outfit = Outfit(),
         advance: np.ndarray | None = None) -> tuple[dict, dict]:
    """Forward kinematics for gait phases (T,): joint positions {name: (T, 3)} and the
    left/right arm swing scales actually used (a bag damps the arm carrying it).
    ``advance`` (T,): forward position of the walker along its path (default 0)."""
    t = len(phase)
    swing = {1: 1.0, -1: 1.0}
    if outfit.bag == "shoulder":
        swing[outfit.bag_side] = 0.45
    elif outfit.bag == "handbag":
        swing[outfit.bag_side] = 0.25
    elif outfit.bag == "backpack":
        swing = {1: 0.8, -1: 0.8}
    yaw = -body.yaw * np.cos(phase)
    pitch = body.lean + body.lean_osc * np.cos(2 * phase)
    lateral = np.stack([np.zeros(t), np.ones(t), np.zeros(t)], 1)
    pelvis = np.stack([np.zeros(t), body.sway * np.sin(phase), np.zeros(t)], 1)
    j: dict[str, np.ndarray] = {"pelvis": pelvis}
    for side, name, ph in ((1, "l", phase), (-1, "r", phase + np.pi)):
        hip = pelvis + side * body.hip_w * _rot_z(lateral, yaw)
        a = fourier(body.hip, ph)
        k = np.maximum(fourier(body.knee, ph) * body.asym_leg ** side, 0.0)
        knee = hip + body.thigh * _rot_z(_dir(a, side, body.leg_abd), yaw)
        shin_ang = a - k
        ankle = knee + body.shin * _rot_z(_dir(shin_ang, side, body.leg_abd * 0.5), yaw)
        fa = shin_ang + fourier(body.ankle, ph)
        fdir = _rot_z(np.stack([np.cos(fa), np.zeros(t), np.sin(fa)], 1), yaw)
        j[f"hip_{name}"], j[f"knee_{name}"], j[f"ankle_{name}"] = hip, knee, ankle
        j[f"heel_{name}"] = ankle - 0.22 * body.foot * fdir
        j[f"toe_{name}"] = ankle + 0.78 * body.foot * fdir
    # Ground contact: lift the body so the lowest foot point touches z = 0 (gives the bounce).
    low = np.min([j[f"{p}_{s}"][:, 2] for p in ("heel", "toe") for s in "lr"], axis=0)
    fx = np.zeros(t) if advance is None else np.asarray(advance, dtype=float)
    lift = np.stack([fx, np.zeros(t), -low + 0.025 * body.limb_r * body.height / 1.7], 1)
    j = {k: v + lift for k, v in j.items()}
    pelvis = j["pelvis"]
    up = _rot_z(np.stack([np.sin(pitch), np.zeros(t), np.cos(pitch)], 1), -0.6 * yaw)
    neck_base = pelvis + body.torso * up
    hp = pitch + body.head_pitch
    head_up = np.stack([np.sin(hp), np.zeros(t), np.cos(hp)], 1)
    j["neck"] = neck_base
    j["head_base"] = neck_base + (body.neck + 0.8 * body.head_r) * head_up
    j["crown"] = j["head_base"] + 0.6 * body.head_r * head_up
    j["trunk_up"] = up
    for side, name, ph in ((1, "l", phase + np.pi), (-1, "r", phase)):
        sh = (neck_base - (0.04 * body.height - side * body.shoulder_tilt / 2) * up
              + side * body.shoulder_w * _rot_z(lateral, -0.6 * yaw))
        s_ang = pitch - swing[side] * body.arm_swing * body.asym_arm ** side * np.cos(
            ph + body.arm_lag)
        e_ang = s_ang + body.elbow0 + body.elbow_k * np.maximum(s_ang - pitch, 0)
        if outfit.bag == "handbag" and side == outfit.bag_side:
            e_ang = s_ang + 0.3 * body.elbow0
        elbow = sh + body.upper_arm * _rot_z(_dir(s_ang, side, body.arm_abd), -0.6 * yaw)
        hand = elbow + body.forearm * _rot_z(_dir(e_ang, side, body.arm_abd * 0.6), -0.6 * yaw)
        j[f"shoulder_{name}"], j[f"elbow_{name}"], j[f"hand_{name}"] = sh, elbow, hand
    return j, swing


# Capsules: (from joint, to joint, radius at each end as a fraction of height x limb scale).
_LIMBS = [
    ("upper_arm", "shoulder", "elbow", 0.026, 0.022), ("forearm", "elbow", "hand", 0.021, 0.019),
    ("thigh", "hip", "knee", 0.046, 0.032), ("shin", "knee", "ankle", 0.03, 0.022),
    ("foot", "heel", "toe", 0.02, 0.017),
]


CAPSULES = ("head", "neck", "trunk_l", "trunk_r", "belly", "shoulders",
            *(f"{name}_{s}" for name, *_ in _LIMBS for s in "lr"))


def parts(body: Body, joints: dict, outfit: Outfit = Outfit()):
    """The body as primitives: capsules (A, B: (T, C, 3), ra, rb: (C,)) and convex solids
    (list of (T, K, 3) point clouds). Capsule order is fixed so callers can drop parts."""
    h, lr = body.height, body.limb_r
    coat = outfit.coat_thick if outfit.coat else 0.0
    a, b, ra, rb = [], [], [], []

    def cap(p, q, r0, r1):
        a.append(p)
        b.append(q)
        ra.append(r0)
        rb.append(r1)

    up = joints["trunk_up"]
    tr = body.torso_r + coat
    cap(joints["head_base"], joints["crown"], body.head_r, body.head_r * 0.95)
    cap(joints["neck"] - 0.03 * h * up, joints["head_base"], 0.026 * h * lr, 0.022 * h * lr)
    for s in "lr":  # trunk sides: hip region up to just under the shoulder line
        cap(0.55 * joints[f"hip_{s}"] + 0.45 * joints["pelvis"],
            0.75 * joints[f"shoulder_{s}"] + 0.25 * joints["neck"] - 0.7 * tr * up, tr, tr)
    fwd = np.cross(joints["hip_l"] - joints["hip_r"], up)  # points forward
    fwd /= np.linalg.norm(fwd, axis=1, keepdims=True)
    cap(joints["pelvis"] + 0.1 * body.torso * up + body.belly * fwd,
        joints["pelvis"] + 0.7 * body.torso * up + 0.5 * body.belly * fwd, tr * 1.05, tr * 1.1)
    cap(joints["shoulder_l"], joints["shoulder_r"], 0.03 * h + coat, 0.03 * h + coat)
    for name, j0, j1, r0, r1 in _LIMBS:
        extra = coat if name in ("upper_arm", "forearm") else 0.0
        for s in "lr":
            cap(joints[f"{j0}_{s}"], joints[f"{j1}_{s}"], r0 * h * lr + extra, r1 * h * lr + extra)
    solids = []
    if outfit.coat and outfit.coat_len > 0:
        solids.append(_skirt(body, joints, outfit, fwd))
    if outfit.bag:
        solids.append(_bag(body, joints, outfit, fwd))
    return np.stack(a, 1), np.stack(b, 1), np.array(ra), np.array(rb), solids


def _ring(centre: np.ndarray, r_fwd: float, r_lat: float, fwd: np.ndarray, n: int = 8):
    lat = np.cross(np.array([0.0, 0.0, 1.0]), fwd)
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return (centre[:, None] + r_fwd * np.cos(ang)[None, :, None] * fwd[:, None]
            + r_lat * np.sin(ang)[None, :, None] * lat[:, None])


def _point_down_leg(joints: dict, s: str, dist: float, thigh: float) -> np.ndarray:
    hip, knee, ankle = joints[f"hip_{s}"], joints[f"knee_{s}"], joints[f"ankle_{s}"]
    if dist <= thigh:
        return hip + (knee - hip) * (dist / thigh)
    shin = np.linalg.norm(ankle - knee, axis=1, keepdims=True)
    return knee + (ankle - knee) * np.minimum((dist - thigh) / shin, 0.95)


def _skirt(body: Body, joints: dict, outfit: Outfit, fwd: np.ndarray) -> np.ndarray:
    """A coat's lower part: hull of a waist ring and a hem ring around each leg."""
    waist = _ring(joints["pelvis"] + 0.25 * body.torso * joints["trunk_up"],
                  body.torso_r + outfit.coat_thick, body.hip_w + body.torso_r + outfit.coat_thick,
                  fwd)
    r_hem = 0.05 * body.height * body.limb_r + outfit.coat_flare
    hems = [_ring(_point_down_leg(joints, s, outfit.coat_len, body.thigh), r_hem, r_hem, fwd)
            for s in "lr"]
    return np.concatenate([waist, *hems], axis=1)


def _bag(body: Body, joints: dict, outfit: Outfit, fwd: np.ndarray) -> np.ndarray:
    """A carried bag as the 8 corners of a box in the trunk's frame."""
    d, w, hgt = outfit.bag_size
    s = "l" if outfit.bag_side > 0 else "r"
    up = np.array([0.0, 0.0, 1.0])
    lat = np.cross(up, fwd)
    if outfit.bag == "backpack":
        up_t = joints["trunk_up"]
        centre = (joints["pelvis"] + 0.62 * body.torso * up_t - (body.torso_r + d / 2) * fwd)
        axes = (fwd, lat, up_t)
    elif outfit.bag == "shoulder":
        centre = (joints[f"hip_{s}"] + outfit.bag_side * (body.torso_r + 0.9 * d) * lat
                  + 0.02 * body.height * up)
        axes = (fwd, lat, np.broadcast_to(up, fwd.shape))
        d, w = w, d  # long side along the walking direction
    else:  # handbag: hangs below the hand
        centre = joints[f"hand_{s}"] - (hgt / 2 + 0.04) * up
        axes = (fwd, lat, np.broadcast_to(up, fwd.shape))
        d, w = w, d
    corners = [centre + sx * d / 2 * axes[0] + sy * w / 2 * axes[1] + sz * hgt / 2 * axes[2]
               for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    return np.stack(corners, axis=1)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera on a circle around the walking path, like CASIA-B's 11 cameras.

    ``view`` degrees: 0 in front of the walker, 90 at its right side, 180 behind. Finite
    ``distance`` and a ``height`` above the aim point matter: with an orthographic camera,
    view v and 180 - v would see mirror images of a symmetric walker.
    """

    view: float
    distance: float = 5.5  # metres, horizontal, from the path's midpoint
    height: float = 1.2  # camera height (m)
    aim: float = 0.9  # height of the point it looks at (m)
    focal: float = 250.0  # pixels

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) metres -> pixel coordinates (..., 2) (u right, v down) and depth (...)."""
        th = np.radians(self.view)
        centre = np.array([self.distance * np.cos(th), -self.distance * np.sin(th), self.height])
        fwd = np.array([0.0, 0.0, self.aim]) - centre
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        rel = points - centre
        depth = rel @ fwd
        uv = np.stack([rel @ right, -(rel @ up)], axis=-1) * (self.focal / depth)[..., None]
        return uv, depth


def walking_speed(body: Body) -> float:
    """Metres per frame: a stride (two steps) per cycle, a step being the ankle's sweep."""
    j, _ = pose(body, np.linspace(0, 2 * np.pi, 24, endpoint=False))
    return float(2 * np.ptp(j["ankle_l"][:, 0] - j["pelvis"][:, 0]) / body.cycle)


def _stadiums(a: np.ndarray, b: np.ndarray, ra: np.ndarray, rb: np.ndarray, n: int = 7):
    """Exact hull polygons of disc pairs: (T, C, 2n, 2) vertices for centres (T, C, 2)."""
    ab = b - a
    d = np.linalg.norm(ab, axis=-1)
    alpha = np.arctan2(ab[..., 1], ab[..., 0])
    beta = np.arccos(np.clip((ra - rb) / np.maximum(d, 1e-9), -1, 1))  # tangent-point angle
    s = np.linspace(0, 1, n)
    ang_b = alpha[..., None] - beta[..., None] + s * 2 * beta[..., None]
    ang_a = alpha[..., None] + beta[..., None] + s * (2 * np.pi - 2 * beta[..., None])
    rb_, ra_ = np.broadcast_to(rb, d.shape)[..., None], np.broadcast_to(ra, d.shape)[..., None]
    pb = b[..., None, :] + rb_[..., None] * np.stack([np.cos(ang_b), np.sin(ang_b)], -1)
    pa = a[..., None, :] + ra_[..., None] * np.stack([np.cos(ang_a), np.sin(ang_a)], -1)
    return np.concatenate([pb, pa], axis=-2)


def render(a2: np.ndarray, b2: np.ndarray, ra: np.ndarray, rb: np.ndarray,
           solids2: list[np.ndarray], draw: np.ndarray | None = None, margin: int = 4):
    """Rasterise projected primitives to (T, H, W) uint8 in {0, 255}.

    ``a2``, ``b2``: (T, C, 2) pixel centres, ``ra``, ``rb``: (C,) pixel radii; ``solids2``:
    (T, K, 2) point clouds filled as convex hulls; ``draw`` (T, C) bool drops capsules.
    The canvas is the sequence's bounding box, so the walker stays in place.
    """
    polys = _stadiums(a2, b2, ra, rb)
    pts = [polys.reshape(len(a2), -1, 2), *solids2]
    lo = np.floor(np.min([p.min(axis=(0, 1)) for p in pts], axis=0)) - margin
    hi = np.ceil(np.max([p.max(axis=(0, 1)) for p in pts], axis=0)) + margin
    w, h = (hi - lo).astype(int) + 1
    unit = 1 << _SHIFT
    polys = np.round((polys - lo) * unit).astype(np.int32)
    solids = [np.round((s - lo) * unit).astype(np.int32) for s in solids2]
    out = np.zeros((len(a2), h, w), dtype=np.uint8)
    for t in range(len(a2)):
        img = out[t]
        for c in range(polys.shape[1]):
            if draw is None or draw[t, c]:
                cv2.fillConvexPoly(img, polys[t, c], 255, cv2.LINE_8, _SHIFT)
        for s in solids:
            cv2.fillConvexPoly(img, cv2.convexHull(s[t]), 255, cv2.LINE_8, _SHIFT)
    return out
