from tests.conftest import ACME, BASE, client_for


def test_health_on_tenant_and_public(db):
    assert client_for(ACME.host).get("/api/health/").json()["tenant"] == "acme"
    assert client_for(BASE).get("/api/health/").json()["schema"] == "public"
