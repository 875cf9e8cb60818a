{
  description = "Garret: a self-hosted, multi-region Nix binary cache compatible with Attic";

  # go.mod asks for Go 1.26: a nixpkgs that has it.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        garret = pkgs.callPackage ./deploy/nixos/package.nix {
          version = self.shortRev or self.dirtyShortRev or "0-unstable";
        };
        default = garret;
      });

      overlays.default = final: _prev: {
        garret = final.callPackage ./deploy/nixos/package.nix { };
      };

      # services.garretd, with this flake's package as its default.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./deploy/nixos/module.nix ];
          services.garretd.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      nixosModules.garretd = self.nixosModules.default;
    };
}
