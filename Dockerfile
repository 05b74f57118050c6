# The dranet node agent image: the package and its runtime dependencies on a slim Python.
# Build: docker build -t dranet:dev .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/dranet \
 && /opt/dranet/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/dranet/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
# iproute2 is not needed by the driver (it speaks netlink itself); it is here so operators
# can inspect a node from inside the pod (kubectl exec ... ip -j link).
# pci.ids (/usr/share/misc/pci.ids) gives dra.net/pciVendor and dra.net/pciDevice their
# names, as the Go driver publishes them (e.g. 'Elastic Fabric Adapter (EFA)').
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 pci.ids \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/dranet /opt/dranet
ENV PATH=/opt/dranet/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["dranet"]
CMD ["run"]
