"""The OpenAPI schema and Swagger UI are served, offline, on both kinds of host."""

import pytest

from tests.helpers import ACME, BASE, api_client


@pytest.mark.parametrize(
    ("host", "present", "absent"),
    [
        (BASE, "/api/platform/tenants/", "/api/products/"),
        (ACME.host, "/api/products/", "/api/platform/tenants/"),
    ],
)
def test_schema_lists_the_hosts_own_endpoints(db, host, present, absent):
    response = api_client(host).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert present in schema["paths"]
    assert absent not in schema["paths"]
    assert schema["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"


def test_swagger_ui_needs_no_internet(db):
    page = api_client(ACME.host).get("/api/docs/")
    assert page.status_code == 200
    assert b"swagger-ui" in page.content
    assert b"cdn.jsdelivr" not in page.content
