# The S3 server of the laptop demo (examples/k8s/minio.yaml): MinIO built from its Go module,
# on scratch, non-root, with the demo's bucket `weir` made as a directory of its data folder
# (MinIO serves a top-level directory as a bucket). The data lives in the container: a demo,
# not a store. MinIO is AGPL-licensed; Weir's own images never contain it.
#
#   docker build -f docker/minio.Dockerfile -t weir-minio:dev docker
#
# scripts/images builds the same image from the binary scripts/kube-tools compiled.
ARG GO_IMAGE=golang:1.26-bookworm
FROM ${GO_IMAGE} AS build
# MinIO publishes no module release tags: a pseudo-version pins one commit.
ARG MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags "-s -w" "github.com/minio/minio@${MINIO_VERSION}" \
    && mkdir -p /rootfs/data/weir /rootfs/tmp /rootfs/etc \
    && printf 'nonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >/rootfs/etc/passwd

FROM scratch
COPY --from=build --chown=65532:65532 /rootfs/ /
COPY --from=build /out/minio /usr/local/bin/minio
USER 65532:65532
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/minio"]
CMD ["server", "/data", "--address", ":9000", "--console-address", ":9001"]
