from django.contrib.auth.hashers import Argon2PasswordHasher


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    """Still Argon2id (hashes verify with the production hasher, whose
    parameters are read from the hash), with test-sized cost."""

    time_cost = 1
    memory_cost = 64
    parallelism = 1
