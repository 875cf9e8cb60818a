# Garret built with nixpkgs' buildGoModule: garretd (and garretadm, its
# make-token tool under atticadm's role) and the garret client.
# go.mod asks for Go 1.26: with a nixpkgs whose default Go is older, pass
# buildGoModule = buildGo126Module (callPackage ./package.nix { buildGoModule = pkgs.buildGo126Module; }).
{
  lib,
  buildGoModule,
  version ? "0-unstable",
}:

buildGoModule {
  pname = "garret";
  inherit version;

  # The Go sources only (not the repository's binaries, docs or deploy files),
  # so unrelated changes do not rebuild it.
  src = lib.fileset.toSource {
    root = ../..;
    fileset = lib.fileset.unions [
      ../../go.mod
      ../../go.sum
      (lib.fileset.fileFilter (file: file.hasExt "go") ../..)
    ];
  };

  # The hash of `go mod vendor`'s output for go.mod/go.sum. After changing
  # them, recompute it with `make vendor-hash` (deploy/nixos/vendor-hash.sh);
  # deploy's Go test fails until it matches.
  vendorHash = "sha256-RRQVU+2MT21SREjHlZ+UW6mCG7m00VRAt9ebhGU327k=";

  subPackages = [
    "cmd/garretd"
    "cmd/garret"
  ];

  # The Makefile's build: static, no build tags (pebble uses klauspost's
  # pure-Go zstd without cgo), paths trimmed (buildGoModule adds -trimpath).
  env.CGO_ENABLED = 0;
  tags = [ ];
  ldflags = [
    "-s"
    "-w"
  ];

  # The tests start clusters and the real nix client: run them with `make test`.
  doCheck = false;

  postInstall = ''
    ln -s garretd $out/bin/garretadm
  '';

  meta = {
    description = "Self-hosted, multi-region Nix binary cache compatible with Attic";
    homepage = "https://github.com/garret-cache/garret";
    mainProgram = "garretd";
    platforms = lib.platforms.linux;
  };
}
