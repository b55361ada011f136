from tests.helpers import ACME, BASE, api_client


def test_health_on_tenant_and_public(db):
    assert api_client(ACME).get("/api/health/").json()["tenant"] == "acme"
    assert api_client(BASE).get("/api/health/").json()["schema"] == "public"
