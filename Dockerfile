# One image for every Bondgate process: central, edge and the simulators.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY kernel ./kernel
COPY bondgate ./bondgate
COPY central ./central
COPY edge ./edge
COPY devices ./devices
COPY firmware_sim ./firmware_sim
RUN pip install --no-cache-dir .
RUN useradd --system --home /var/lib/bondgate bondgate && mkdir -p /var/lib/bondgate \
 && chown bondgate /var/lib/bondgate
USER bondgate
ENTRYPOINT ["bondgate"]
