# Evaluates module.nix with nixpkgs' own lib (the module system, option
# types, mkIf/mkDefault) and small stand-ins for what only a full nixpkgs
# and NixOS have: pkgs.formats.toml's type (its JSON-like value type, as in
# nixpkgs) and builders that return placeholder store paths, and the NixOS
# options the module sets. deploy's Go test prints the result as JSON and
# checks it (settings rendered to TOML pass garretd --mode check-config; the
# firewall ports; the unit's hardening; the token wrapper's shell syntax).
#   nix-instantiate --eval --strict --json deploy/nixos/testdata/eval.nix \
#     --arg lib 'import /path/to/nixpkgs/lib' --arg garretd '{ … }'
{
  lib,
  garretd,
}:
let
  stubDrv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  } // extra;

  pkgs = {
    formats.toml =
      { }:
      {
        type =
          let
            valueType =
              lib.types.nullOr (
                lib.types.oneOf [
                  lib.types.bool
                  lib.types.int
                  lib.types.float
                  lib.types.str
                  lib.types.path
                  (lib.types.attrsOf valueType)
                  (lib.types.listOf valueType)
                ]
              )
              // {
                description = "TOML value";
              };
          in
          valueType;
        generate = name: _value: stubDrv name { };
      };
    runCommand =
      name: env: script:
      stubDrv name {
        inherit script;
        env = removeAttrs env [ "nativeBuildInputs" ];
      };
    writeShellScriptBin = name: text: stubDrv name { inherit text; };
  };

  garretPackage = stubDrv "garret" { meta.mainProgram = "garretd"; };

  # The NixOS options module.nix sets, as far as it uses them.
  nixosStub =
    { lib, ... }:
    {
      options = {
        assertions = lib.mkOption {
          type = lib.types.listOf lib.types.unspecified;
          default = [ ];
        };
        environment.systemPackages = lib.mkOption {
          type = lib.types.listOf lib.types.package;
          default = [ ];
        };
        networking.firewall.allowedTCPPorts = lib.mkOption {
          type = lib.types.listOf lib.types.port;
          default = [ ];
        };
        networking.firewall.allowedUDPPorts = lib.mkOption {
          type = lib.types.listOf lib.types.port;
          default = [ ];
        };
        systemd.package = lib.mkOption {
          type = lib.types.package;
          default = stubDrv "systemd" { };
        };
        systemd.services = lib.mkOption {
          type = lib.types.attrsOf (
            lib.types.submodule {
              freeformType = lib.types.attrsOf lib.types.anything;
              options.serviceConfig = lib.mkOption {
                type = lib.types.attrsOf lib.types.anything;
                default = { };
              };
            }
          );
          default = { };
        };
      };
    };

  eval = lib.evalModules {
    specialArgs = { inherit pkgs; };
    modules = [
      nixosStub
      ../module.nix
      {
        services.garretd = {
          package = garretPackage;
        } // garretd;
      }
    ];
  };
  c = eval.config;
in
{
  settings = c.services.garretd.settings;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  firewall = {
    tcp = c.networking.firewall.allowedTCPPorts;
    udp = c.networking.firewall.allowedUDPPorts;
  };
  services = lib.mapAttrs (_: s: s.serviceConfig) c.systemd.services;
  # The build-time check of the config: runCommand's script and environment.
  configCheck =
    if c.services.garretd.enable then
      {
        inherit (c.services.garretd.configFile) script env;
      }
    else
      null;
  wrappers = map (p: {
    inherit (p) name;
    text = p.text or "";
  }) c.environment.systemPackages;
}
