"""What a summary may carry to the operator, status, Events and notifications: no row values
(``core.datavalues``), and figures the status can hold (``core.termination``)."""

from __future__ import annotations

import json

import pytest

from backup_job.core.datavalues import NOT_SHOWN, scrub
from backup_job.core.termination import TerminationMessage

SSN = "123-45-6789"


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (f'ERROR:  invalid input syntax for type integer: "{SSN}"', "ERROR:  invalid input syntax for type integer:"),
        (f'ERROR:  invalid input value for enum mood: "{SSN}"', "ERROR:  invalid input value for enum mood:"),
        (f'ERROR:  value "{SSN}" is out of range for type integer', "ERROR:  value"),
        (f'ERROR:  date/time field value out of range: "{SSN}"', "ERROR:  date/time field value out of range:"),
        ('ERROR:  invalid byte sequence for encoding "UTF8": 0xe9 0x20', 'for encoding "UTF8":'),
        (
            f'ERROR:  duplicate key value violates unique constraint "people_pkey"\nDETAIL:  Key (ssn)=({SSN}) already '
            "exists.",
            'violates unique constraint "people_pkey"\nDETAIL:',
        ),
        (
            f'ERROR:  new row for relation "people" violates check constraint "c" Failing row contains ({SSN}).',
            'violates check constraint "c" Failing row contains',
        ),
        (f"ERROR:  syntax error\nLINE 1: SELECT '{SSN}' +", "ERROR:  syntax error\nLINE 1:"),
        (f'ERROR:  bad\nCONTEXT:  COPY people, line 1, column ssn: "{SSN}"', "ERROR:  bad\nCONTEXT:"),
        (f'ERROR:  invalid input syntax for type integer: "12"; \'b\': and {SSN}"', "for type integer:"),
    ],
)
def test_a_data_value_is_cut_with_what_follows(error: str, kept: str) -> None:
    scrubbed = scrub(f"1 of 2 databases failed: 'people': psql failed at line 9: {error}")
    assert SSN not in scrubbed and "0xe9" not in scrubbed and scrubbed.endswith(NOT_SHOWN)
    assert scrubbed.startswith("1 of 2 databases failed: 'people': psql failed at line 9: ERROR:  ")
    assert scrubbed.endswith(f"{kept} {NOT_SHOWN}")
    assert scrub(scrubbed) == scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "2 of 2 backups failed: 'a': pg_dump failed (exit 1): ERROR:  permission denied for table orders; 'b': "
        'FATAL:  role "app" does not exist',
        "restored 'shop' from 20261126T020000Z (3 tables, 1,000 rows) in 2.1 s",
        "configuration error: BACKUP_RETENTION='last=0' is not a whole number of at least 1",
    ],
)
def test_messages_without_data_values_are_unchanged(text: str) -> None:
    assert scrub(text) == text


def test_the_termination_message_carries_no_data_value_either_way() -> None:
    failed = f"1 of 1 databases failed verification: 'people': ERROR:  invalid input syntax for type integer: \"{SSN}\""
    encoded = TerminationMessage(failed, command="verify", ok=False).encode().decode()
    assert SSN not in encoded and "invalid input syntax for type integer" in encoded
    from_older_job = json.dumps({"v": 1, "command": "verify", "ok": False, "summary": failed})
    assert SSN not in TerminationMessage.decode(from_older_job).summary
    assert SSN not in TerminationMessage.decode(failed).summary  # the plain text of the oldest versions


def test_figures_the_status_cannot_hold_are_read_as_absent() -> None:
    told = TerminationMessage.decode(
        '{"v":1,"command":"run","ok":false,"summary":"failed","seconds":NaN,'
        '"bytes":1e999,"databases":{"ok":Infinity,"failed":-1},"suspect":-Infinity}'
    )
    assert (told.ok, told.summary) == (False, "failed")
    assert (told.seconds, told.stored_bytes, told.databases_ok, told.databases_failed, told.suspect) == (None,) * 5
    huge = TerminationMessage.decode('{"v":1,"summary":"ok","seconds":1e308,"bytes":9223372036854775808}')
    assert huge.seconds == 1e308 and huge.stored_bytes is None
    assert TerminationMessage.decode('{"v":1,"summary":"ok","seconds":1' + "0" * 400 + "}").seconds is None
    fine = TerminationMessage.decode('{"v":1,"summary":"ok","seconds":0,"bytes":9223372036854775807}')
    assert fine.seconds == 0.0 and fine.stored_bytes == 2**63 - 1
