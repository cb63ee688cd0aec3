# An image from a binary built on the host (scripts/images stages it): FROM scratch with the
# binary, the shared libraries it links (glibc, libgcc, as distroless/cc has) and a non-root
# user — nothing else. Used where no base image can be pulled.
FROM scratch
COPY rootfs/ /
USER 65532:65532
ENTRYPOINT ["/entrypoint"]
