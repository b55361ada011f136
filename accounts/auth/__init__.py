"""Who is calling: every credential, bound to the tenant that issued it.

=====================  =======================================================
``jwt_tokens``         simplejwt token classes carrying the tenant (schema and
                       row id) and the user's revocation epoch
``jwt_serializers``    simplejwt's create/refresh/verify/blacklist serializers,
                       hardened (rotation that cannot be raced, revocation)
``authentication``     the DRF authentication class (``Bearer``/``JWT`` header)
``link_tokens``        one-time tokens of emailed links (activation, password
                       reset, email change), one generator per purpose
``backends``           Django login backends (email or username)
``throttles``          DRF throttles keyed by tenant, per IP and per account
``openapi``            how the OpenAPI schema describes the authentication
=====================  =======================================================
"""
