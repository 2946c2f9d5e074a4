"""The API's endpoints, ``/api/v1``, by what they are about."""
