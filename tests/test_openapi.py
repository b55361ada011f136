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


@pytest.mark.parametrize("host", [BASE, ACME.host])
def test_every_operation_documents_its_errors_in_the_error_shape(db, host):
    """core.openapi.AutoSchema; tests/test_fuzz.py holds the answers to it."""
    schema = api_client(host).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"detail", "code"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert any(status.startswith("2") for status in responses), (method, path)
            expected = {"400"} | ({"401"} if {"jwtAuth": []} in operation.get("security", []) else set())
            if "{" in path:
                expected.add("404")
            if "requestBody" in operation:
                expected |= {"413", "415"}
            assert expected <= set(responses), (method, path, sorted(responses))
            for status in responses.keys() - {"200", "201", "202", "204"}:
                content = responses[status]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Error"}, (method, path, status)
