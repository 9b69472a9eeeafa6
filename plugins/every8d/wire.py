"""Deprecated: the wire formats moved to :mod:`every8d.client.v21` (one module per endpoint family),
the result types to :mod:`every8d.client.results` and the listing check to :mod:`every8d.client.pagination`.

This module only re-exports them, for one release, for code outside the client that still imports it.
"""

from __future__ import annotations

from every8d.client.pagination import (  # noqa: F401
    listing_problem,
)
from every8d.client.results import (  # noqa: F401
    DeliveryStatus,
    EraseResult,
    ParamRecipient,
    Reply,
    ReplyPage,
    SendResult,
    StatusPage,
)
from every8d.client.statuses import (  # noqa: F401
    _STATUSES,
    StatusGroup,
    StatusInfo,
    status_info,
)
from every8d.client.v21.booking import (  # noqa: F401
    ERASE_BOOKING,
    MMS_ERASE_BOOKING,
    parse_erase_response,
)
from every8d.client.v21.common import (  # noqa: F401
    _ENDPOINT_MEANINGS,
    _ERROR_BODY,
    _LISTING_BREAKERS,
    API_PATH,
    ERROR_MEANINGS,
    LISTING_TIME_FORMAT,
    SCHEDULE_FORMAT,
    TAIPEI,
    clean_name,
    error_meaning,
    format_schedule_time,
    gateway_error,
    parse_error_body,
    parse_taipei_time,
    raise_for_error_body,
)
from every8d.client.v21.credit import (  # noqa: F401
    CREDIT,
    parse_credit,
)
from every8d.client.v21.mms import (  # noqa: F401
    _TAIWAN_MOBILE,
    MMS_IMAGE_TYPES,
    MMS_MAX_IMAGE_BYTES,
    MMS_SUBJECT_MAX_ASCII,
    MMS_SUBJECT_MAX_CJK,
    SEND_MMS,
    check_mms_image,
    check_mms_size,
    check_mms_subject,
    detect_image_type,
    is_taiwan_mobile,
)
from every8d.client.v21.replies import (  # noqa: F401
    _MOBILE_CELL,
    REPLY_MESSAGES,
    REPLY_PAGE_SIZE,
    parse_reply_page,
)
from every8d.client.v21.sms import (  # noqa: F401
    _BATCH_ID,
    MAX_PARAM_FIELDS,
    SEND_PARAM_SMS,
    SEND_SMS,
    SEND_SMS_FILTERED,
    _filtered_numbers,
    build_param_sms_body,
    parse_param_send_response,
    parse_send_response,
)
from every8d.client.v21.status import (  # noqa: F401
    _BARE_CR,
    _CONTENT_LINE,
    _CSV_BLOCK_SIZE,
    _CSV_COLUMN_TYPES,
    _JSON_COUNT_KEYS,
    _JSON_RECORDS_KEYS,
    _JSON_STATUS_KEYS,
    _REQUIRED_JSON_FIELDS,
    _TIME_TEXT,
    _UTC,
    DELIVERY_STATUS,
    KNOWN_STATUS_CODES,
    MMS_DELIVERY_STATUS,
    STATUS_CODES,
    STATUS_PAGE_SCHEMA,
    STATUS_PAGE_SIZE,
    _csv_convert_options,
    _csv_parse_options,
    _delivered_without_receipt,
    _empty_status_table,
    _json_cell,
    _json_times,
    _key,
    _pick,
    _status_rows_csv,
    _status_rows_kernels,
    _taipei_to_utc,
    _times,
    check_known_statuses,
    concat_status_pages,
    parse_status_page,
    parse_status_page_json,
    parse_status_pages,
)
from every8d.errors import AUTH_CODES, TEMPORARY_CODES  # noqa: F401

SEND_ENDPOINTS = frozenset({SEND_SMS, SEND_SMS_FILTERED, SEND_PARAM_SMS, SEND_MMS})
