"""Completed check-ins as FHIR R4 resources: a QuestionnaireResponse and an Observation of the score each."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from services.checkins.instruments import FREQUENCY, GAD7, INSTRUMENTS, PAIN, PHQ9
from services.checkins.models import Checkin

LOINC = "http://loinc.org"
# The questionnaires' LOINC panels, and the LOINC answer list LL358-3 of their four options.
PANELS = {PHQ9: "44249-1", GAD7: "69737-5"}
FREQUENCY_CODES = {0: "LA6568-5", 1: "LA6569-3", 2: "LA6570-1", 3: "LA6571-9"}
TOTALS = {
    PHQ9: {
        "system": LOINC,
        "code": "44261-6",
        "display": "Patient Health Questionnaire 9 item (PHQ-9) total score",
    },
    GAD7: {
        "system": LOINC,
        "code": "70274-6",
        "display": "Generalized anxiety disorder 7 item (GAD-7) total score",
    },
    PAIN: {
        "system": LOINC,
        "code": "72514-3",
        "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
    },
}
SURVEY = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]
}


def _answer(instrument: str, value: int) -> dict[str, Any]:
    if instrument in PANELS:
        label = dict(FREQUENCY)[value]
        return {"valueCoding": {"system": LOINC, "code": FREQUENCY_CODES[value], "display": label}}
    return {"valueInteger": value}


def questionnaire_response(checkin: Checkin, answers: dict[int, int], base_url: str) -> QuestionnaireResponse:
    """The patient's answers to one completed check-in."""
    instrument = INSTRUMENTS[checkin.instrument]
    panel = PANELS.get(checkin.instrument)
    canonical = (
        f"{LOINC}/q/{panel}" if panel else f"{base_url.rstrip('/')}/fhir/Questionnaire/{instrument.key}"
    )
    assert checkin.completed_at is not None
    return QuestionnaireResponse.model_validate(
        {
            "resourceType": "QuestionnaireResponse",
            "id": str(checkin.id),
            "questionnaire": canonical,
            "status": "completed",
            "subject": {"reference": f"Patient/{checkin.patient_id}"},
            "authored": checkin.completed_at.isoformat(),
            "item": [
                {"linkId": str(n), "text": text, "answer": [_answer(checkin.instrument, answers[n])]}
                for n, text in enumerate(instrument.items, start=1)
                if n in answers
            ],
        }
    )


def score_observation(checkin: Checkin) -> Observation:
    """The check-in's total (or rating) as an Observation derived from its QuestionnaireResponse."""
    assert checkin.completed_at is not None
    assert checkin.score is not None
    code = (
        {"coding": [TOTALS[checkin.instrument]]}
        if checkin.instrument in TOTALS
        else {"text": "Mood rating 0-10"}
    )
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(uuid.uuid5(checkin.id, "score")),
        "status": "final",
        "category": [SURVEY],
        "code": code,
        "subject": {"reference": f"Patient/{checkin.patient_id}"},
        "effectiveDateTime": checkin.completed_at.isoformat(),
        "valueInteger": checkin.score,
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{checkin.id}"}],
    }
    if checkin.band:
        body["interpretation"] = [{"text": checkin.band}]
    return Observation.model_validate(body)


def bundle(completed: list[tuple[Checkin, dict[int, int]]], base_url: str) -> dict[str, Any]:
    """A collection Bundle of every completed check-in's two resources, as JSON."""
    entries = []
    for checkin, answers in completed:
        for resource in (questionnaire_response(checkin, answers, base_url), score_observation(checkin)):
            entries.append(
                {
                    "fullUrl": f"{base_url.rstrip('/')}/fhir/{resource.get_resource_type()}/{resource.id}",
                    "resource": json.loads(resource.model_dump_json()),
                }
            )
    made = Bundle.model_validate({"resourceType": "Bundle", "type": "collection", "entry": entries})
    result: dict[str, Any] = json.loads(made.model_dump_json())
    return result
