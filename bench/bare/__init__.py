"""The floor the product list is measured against: bare DRF over the same rows.

``bench/products_http.py`` serves this next to the product under the same
gunicorn: no tenant middleware, no JWT, no permissions, no throttles; the
tenant's schema is the connection's search_path; the same serializer and
pagination as ``/api/products/``.
"""
