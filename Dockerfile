# Gantry's container image: `gantry` as the entry point, run by a non-root user.
#
#   docker build -t gantry .           (or: podman build -t gantry .)
#   docker run --rm -v "$PWD:/data" gantry demo /data/gantry-demo
#   docker run --rm -v "$PWD:/data" gantry info --db /data/project.db --json
#
# The image holds the core package (imagecodecs: JPEG, JPEG Lossless, JPEG-LS,
# JPEG 2000, RLE), both OCR engines (rapidocr with its bundled ONNX models, and
# Debian's tesseract-ocr), DICOM networking and NIfTI export. Work happens in
# /data, a volume owned by the `gantry` user (uid 10001).
#
# PYTHON_IMAGE must be a Debian-based image with Python >= 3.11, python3-venv
# and apt (the default, the official slim image, has them). Behind a proxy that
# re-signs TLS, mount its CA and name it, e.g.
#   podman build -v /etc/ssl/certs/ca-certificates.crt:/run/site-ca.crt:ro \
#                --build-arg PIP_CERT=/run/site-ca.crt -t gantry .
# (PIP_INDEX_URL likewise for a package mirror); neither is kept in the image.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
ARG PIP_CERT
ARG PIP_INDEX_URL
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gantry ./gantry
COPY profiles ./profiles
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --disable-pip-version-check build \
    && /opt/build/bin/python -m build --wheel --outdir /dist

FROM ${PYTHON_IMAGE}
ARG PIP_CERT
ARG PIP_INDEX_URL
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/gantry/bin:$PATH
# tesseract-ocr: the second OCR engine; libgl1, libglib2.0-0: OpenCV, which rapidocr uses
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        tesseract-ocr tesseract-ocr-eng libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=wheel /dist/ /tmp/dist/
RUN python3 -m venv /opt/gantry \
    && wheel="$(ls /tmp/dist/gantry-*.whl)" \
    && /opt/gantry/bin/pip install "${wheel}[ocr,net,nifti]" \
    && rm -rf /tmp/dist \
    && gantry --help >/dev/null
RUN useradd --create-home --uid 10001 --user-group gantry \
    && mkdir /data && chown gantry:gantry /data
USER gantry
WORKDIR /data
VOLUME ["/data"]
ENTRYPOINT ["gantry"]
CMD ["--help"]
