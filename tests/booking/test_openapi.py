"""The booking service documents itself: an OpenAPI 3 document and interactive docs served locally."""

from __future__ import annotations

from flask.testing import FlaskClient


def test_openapi_document_covers_the_api(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path in (
        "/api/v1/bookings",
        "/api/v1/bookings/{booking_id}/reschedule",
        "/api/v1/bookings/{booking_id}/cancel",
        "/api/v1/slots",
        "/api/v1/providers/{provider_id}/availability",
        "/api/v1/providers/{provider_id}/overrides/{day}",
        "/api/v1/manage/{token}",
    ):
        assert path in paths, path
    assert paths["/api/v1/bookings"]["post"]["security"] == [{"staffKey": []}]
    assert "409" in paths["/api/v1/bookings"]["post"]["responses"]
    assert "security" not in paths["/api/v1/manage/{token}"]["get"]
    assert spec["components"]["securitySchemes"]["staffKey"]["scheme"] == "bearer"


def test_docs_page_loads_nothing_from_outside(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "https://" not in html
    assert "http://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        with client.get(f"/api/docs/assets/{asset}") as response:
            assert response.status_code == 200


def test_errors_are_documented_as_problem_json(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    for name, response in spec["components"]["responses"].items():
        if "content" in response:
            assert list(response["content"]) == ["application/problem+json"], name
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if status[0] in "45" and "content" in response:
                    assert list(response["content"]) == ["application/problem+json"], (path, method, status)
    # Problems carry extension members (a conflict's alternatives, the current version).
    assert spec["components"]["schemas"]["Problem"]["additionalProperties"] is True


def test_the_document_states_the_limits_the_api_enforces(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    schemas = spec["components"]["schemas"]
    (clinic_id,) = spec["paths"]["/api/v1/clinics/{clinic_id}"]["parameters"]
    assert clinic_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert schemas["ClinicPatch"]["minProperties"] == 1
    assert schemas["ClinicPatch"]["additionalProperties"] is False
    assert (
        schemas["PatientDetails"]["properties"]["name"]["pattern"] == "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )
    assert schemas["BookingIn"]["properties"]["start"]["pattern"].startswith("^(?:19|[2-8][0-9])")
    # A nullable nested object is that object or null, not any object.
    assert schemas["BookingIn"]["properties"]["patient"] == {
        "default": None,
        "nullable": True,
        "allOf": [{"$ref": "#/components/schemas/PatientDetails"}],
    }
    cancel = spec["paths"]["/api/v1/bookings/{booking_id}/cancel"]["post"]
    assert cancel["requestBody"]["required"] is False


def test_links_lead_from_each_created_resource_to_what_reads_and_changes_it(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    created = spec["paths"]["/api/v1/bookings"]["post"]["responses"]["201"]["links"]
    assert created["CancelBooking"] == {
        "operationRef": "#/paths/~1api~1v1~1bookings~1{booking_id}~1cancel/post",
        "parameters": {"booking_id": "$response.body#/id"},
    }
    for path in ("/api/v1/clinics", "/api/v1/providers", "/api/v1/appointment-types", "/api/v1/invitations"):
        links = spec["paths"][path]["post"]["responses"]["201"]["links"]
        for link in links.values():
            target, method = link["operationRef"].removeprefix("#/paths/").rsplit("/", 1)
            assert method in spec["paths"][target.replace("~1", "/")], link


def test_no_route_takes_an_unbounded_integer(client: FlaskClient) -> None:
    from werkzeug.routing import IntegerConverter

    for rule in client.application.url_map.iter_rules():
        for name, converter in rule._converters.items():
            if isinstance(converter, IntegerConverter):
                assert converter.max is not None, (rule.rule, name)
