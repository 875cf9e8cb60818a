# For NixOS configurations without flakes (channels, npins, niv):
#
#   let garret = import /path/to/garret/deploy { inherit pkgs; };
#   in {
#     imports = [ garret.module ];
#     services.garretd = { enable = true; package = garret.package; … };
#   }
#
# or `nix-build deploy -A package`. Flake users take the repository's
# flake.nix (packages.default, nixosModules.default), which uses the same files.
{
  pkgs ? import <nixpkgs> { },
}:
{
  package = pkgs.callPackage ./nixos/package.nix { };
  module = ./nixos/module.nix;
}
