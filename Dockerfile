# syntax=docker/dockerfile:1
# The operator image: a static musl binary on distroless/static (CA roots, no shell), run as
# the nonroot user 65532, which the chart's securityContext also sets.
#   docker build -t ghcr.io/certsmith/certsmith:0.1.0 .
# (Not built in CI: the CI machine has no container engine.)

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin certsmith \
 && cp target/x86_64-unknown-linux-musl/release/certsmith /certsmith

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /certsmith /certsmith
USER 65532:65532
EXPOSE 9402
ENTRYPOINT ["/certsmith"]
CMD ["controller"]
