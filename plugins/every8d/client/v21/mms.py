"""MMS/sendMMS: the image checks made before anything is sent."""

from __future__ import annotations

import base64
import re

SEND_MMS = "MMS/sendMMS.ashx"


MMS_MAX_IMAGE_BYTES = 300 * 1024
MMS_IMAGE_TYPES = ("jpg", "jpeg", "png", "gif")
MMS_SUBJECT_MAX_CJK = 15
MMS_SUBJECT_MAX_ASCII = 95


def detect_image_type(image: bytes) -> str | None:
    """``jpg``, ``png`` or ``gif`` from the file's magic bytes, or None."""
    if image.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if image.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if image[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def check_mms_image(image: bytes, declared_type: str | None = None) -> str:
    """Validate an MMS image before sending; return the TYPE value to send.

    :raises ValueError: empty, too large, not jpg/png/gif, or not the declared type.
    """
    if not image:
        raise ValueError("the MMS image is empty")
    if len(image) > MMS_MAX_IMAGE_BYTES:
        raise ValueError(
            f"the MMS image has {len(image)} bytes; the gateway takes at most {MMS_MAX_IMAGE_BYTES}"
        )
    detected = detect_image_type(image)
    if detected is None:
        raise ValueError("the MMS image is not a JPEG, PNG or GIF file")
    if declared_type is not None:
        declared = declared_type.lower().lstrip(".")
        if declared not in MMS_IMAGE_TYPES:
            raise ValueError(f"MMS image type {declared_type!r} is not one of {', '.join(MMS_IMAGE_TYPES)}")
        if {declared, detected} != {"jpeg", "jpg"} and declared != detected:
            raise ValueError(f"the MMS image is a {detected} file, not {declared}")
        return declared
    return detected


def check_mms_size(image: bytes, text: str) -> None:
    """Image plus text (圖加文) must fit the gateway's largest MMS.

    :raises ValueError: naming the size and the limit.
    """
    from every8d.pricing import mms_size

    size = mms_size(len(image), text)
    if size > MMS_MAX_IMAGE_BYTES:
        raise ValueError(
            f"the MMS has {size} bytes of image plus text; the gateway takes at most {MMS_MAX_IMAGE_BYTES}"
        )


_TAIWAN_MOBILE = re.compile(r"^(?:\+886|886|0)9\d{8}$")


def is_taiwan_mobile(number: str) -> bool:
    """True for a Taiwan mobile (``09xxxxxxxx``, ``+8869xxxxxxxx``), spaces and dashes ignored."""
    return bool(_TAIWAN_MOBILE.match(re.sub(r"[\s\-()]", "", number)))


def check_mms_subject(subject: str) -> None:
    """The gateway limits MMS subjects to 15 characters, or 95 when pure ASCII."""
    limit = MMS_SUBJECT_MAX_ASCII if subject.isascii() else MMS_SUBJECT_MAX_CJK
    if len(subject) > limit:
        raise ValueError(f"the MMS subject has {len(subject)} characters; at most {limit} are allowed")


def check_mms(image: bytes, image_type: str | None, subject: str, message: str) -> str:
    """Subject, image and size checked before anything is sent; the ``TYPE`` value to send.

    :raises ValueError: naming what is wrong.
    """
    check_mms_subject(subject)
    kind = check_mms_image(image, image_type)
    check_mms_size(image, message)
    return kind


def mms_form(form: dict[str, str], image: bytes, kind: str) -> dict[str, str]:
    """A plain send's ``form`` (:func:`~every8d.client.v21.sms.send_form`) made an MMS, the image attached.

    :raises ValueError: a destination is not a Taiwan mobile (the gateway sends MMS in Taiwan only).
    """
    abroad = [
        index for index, number in enumerate(form["DEST"].split(","), start=1) if not is_taiwan_mobile(number)
    ]
    if abroad:
        raise ValueError(
            f"MMS goes to Taiwan mobiles only; {len(abroad)} destination(s) are not "
            f"(the first is destination {abroad[0]})"
        )
    return {**form, "ATTACHMENT": base64.b64encode(image).decode("ascii"), "TYPE": kind}
