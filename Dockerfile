# One image for every process of fleet-recon: migrate (`recon db upgrade`), Celery worker, beat and Flower.
# docker-compose.yml picks the process with `command:`; see docs/operations.md.
# No secrets here: database URL, Redis URL, venue credentials and Flower's login come from the environment
# at run time, and the fleet file is mounted (read-only) at /app/fleet.toml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN groupadd --system --gid 10001 recon \
    && useradd --system --uid 10001 --gid recon --home-dir /app --no-create-home --shell /usr/sbin/nologin recon \
    && install --directory --owner=recon --group=recon --mode=0750 /var/lib/flower

WORKDIR /app

# Dependencies first, in their own layer, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The whole checkout (see .dockerignore), installed in editable mode so `recon db upgrade` finds alembic/
# and alembic.ini beside the packages. The source stays owned by root: the service user cannot change it.
COPY . /app
RUN pip install --no-cache-dir -e . \
    && test -f /app/alembic.ini && test -d /app/alembic \
    && recon --help > /dev/null

USER recon

CMD ["recon", "--help"]
