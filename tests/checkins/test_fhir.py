"""Completed check-ins exported as FHIR R4 resources, validated with fhir.resources (R4B models)."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from flask import Flask

from tests.checkins.conftest import (
    FIRST,
    PATIENT,
    SESSION,
    STAFF,
    booking_event,
    checkin_token,
    checkins,
    deliver,
    schedule,
)


def _answer(app: Flask, step: str, values: list[int]) -> None:
    (checkin,) = [c for c in checkins(app, plan_step=step) if c.status == "sent"]
    token = checkin_token(app, checkin)
    for item, value in enumerate(values, start=1):
        app.test_client().post(f"/c/{token}", data={"item": item, "value": value})


def test_each_completed_check_in_is_a_questionnaire_response_and_a_coded_observation(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event())
    clock.move_to(FIRST - timedelta(hours=47))
    schedule(app)
    _answer(app, "phq9-before-first", [3, 2, 2, 1, 1, 1, 1, 0, 0])  # 11
    _answer(app, "gad7-before-first", [1, 1, 1, 1, 1, 1, 1])  # 7
    clock.move_to(FIRST + SESSION + timedelta(days=1, minutes=1))
    schedule(app)
    _answer(app, "pain-day-after", [6])
    _answer(app, "mood-day-after", [4])

    answer = app.test_client().get(f"/api/v1/patients/{PATIENT}/fhir", headers=STAFF)
    assert answer.status_code == 200
    bundle = Bundle.model_validate(answer.json)
    assert bundle.type == "collection"
    resources = [entry["resource"] for entry in answer.json["entry"]]
    responses = [
        QuestionnaireResponse.model_validate(r)
        for r in resources
        if r["resourceType"] == "QuestionnaireResponse"
    ]
    observations = [Observation.model_validate(r) for r in resources if r["resourceType"] == "Observation"]
    assert len(responses) == len(observations) == 4

    codes = {
        (o.code.coding[0].code if o.code.coding else o.code.text): (o.valueInteger, o.interpretation)
        for o in observations
    }
    assert codes["44261-6"][0] == 11  # PHQ-9 total
    assert codes["44261-6"][1][0].text == "moderate"
    assert codes["70274-6"][0] == 7  # GAD-7 total
    assert codes["72514-3"] == (6, None)  # pain severity 0-10
    assert codes["Mood rating 0-10"] == (4, None)
    for observation in observations:
        assert observation.status == "final"
        assert observation.subject.reference == f"Patient/{PATIENT}"
        assert observation.derivedFrom[0].reference.startswith("QuestionnaireResponse/")

    phq9 = next(r for r in responses if r.questionnaire == "http://loinc.org/q/44249-1")
    assert phq9.status == "completed"
    first = phq9.item[0]
    assert (first.linkId, first.text) == ("1", "Little interest or pleasure in doing things")
    assert (first.answer[0].valueCoding.code, first.answer[0].valueCoding.display) == (
        "LA6571-9",
        "Nearly every day",
    )
    pain = next(r for r in responses if r.questionnaire.endswith("/fhir/Questionnaire/pain"))
    assert pain.item[0].answer[0].valueInteger == 6


def test_a_patient_with_nothing_completed_exports_an_empty_bundle_and_an_unknown_one_is_404(
    app: Flask, clock: time_machine.Coordinates
) -> None:
    deliver(app, booking_event())
    client = app.test_client()
    empty = client.get(f"/api/v1/patients/{PATIENT}/fhir", headers=STAFF)
    assert empty.status_code == 200
    assert Bundle.model_validate(empty.json).entry is None
    missing = client.get("/api/v1/patients/00000000-0000-4000-8000-0000000000ff/fhir", headers=STAFF)
    assert missing.status_code == 404
