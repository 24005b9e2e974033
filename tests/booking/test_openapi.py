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
