# services.garretd: a Garret node, modelled on nixpkgs' services.atticd.
#
#   services.garretd = {
#     enable = true;
#     environmentFile = "/run/secrets/garretd.env"; # GARRET_SERVER_TOKEN_HS256_SECRET_BASE64=…, GARRET_CLUSTER_SECRET=…
#     settings = {
#       listen = "127.0.0.1:8080";
#       api-endpoint = "https://cache.example.com/";
#       cluster = { region = "eu"; gossip-listen = "0.0.0.0:7946"; p2p-listen = "0.0.0.0:4001"; };
#     };
#     openFirewall = true; # the gossip and libp2p ports above
#   };
#
# Tokens: `garretd-make-token --sub alice --validity '1 month' --pull '*'` as root
# (atticd-atticadm's equivalent).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.garretd;
  format = pkgs.formats.toml { };

  renderedConfig = format.generate "garretd-server.toml" cfg.settings;

  # The config as garretd itself checks it at build time (as the atticd
  # module does), with placeholder secrets: the real ones stay in
  # environmentFile, out of the Nix store.
  checkedConfigFile =
    pkgs.runCommand "garretd-server-checked.toml"
      {
        nativeBuildInputs = [ cfg.package ];
        GARRET_SERVER_TOKEN_HS256_SECRET_BASE64 = "Y2hlY2stY29uZmlnLW9ubHktbm90LWEtcmVhbC1zZWNyZXQ=";
        GARRET_CLUSTER_SECRET = "check-config-only-not-a-real-cluster-secret";
      }
      ''
        export HOME=$TMPDIR
        garretd --config ${renderedConfig} --mode check-config
        cp ${renderedConfig} $out
      '';

  # The port of a "host:port" address.
  portOf = address: lib.toInt (lib.last (lib.splitString ":" address));
  clusterSettings = cfg.settings.cluster or { };
  clusterPorts =
    key: lib.optional (clusterSettings ? ${key}) (portOf clusterSettings.${key});

  makeTokenWrapper = pkgs.writeShellScriptBin "garretd-make-token" ''
    exec ${config.systemd.package}/bin/systemd-run \
      --quiet \
      --pipe \
      --wait \
      --collect \
      --service-type=exec \
      ${lib.optionalString (cfg.environmentFile != null) "--property=EnvironmentFile=${cfg.environmentFile}"} \
      --property=DynamicUser=yes \
      --property=User=${cfg.user} \
      --property=Group=${cfg.group} \
      --working-directory / \
      -- \
      ${lib.getExe cfg.package} make-token --config ${checkedConfigFile} "$@"
  '';
in
{
  options.services.garretd = {
    enable = lib.mkEnableOption "the Garret Nix binary cache node (garretd)";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The Garret package (deploy/nixos/package.nix, or the flake's packages.default).";
    };

    environmentFile = lib.mkOption {
      # A string, not a path: a path literal would be copied into the Nix store.
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/secrets/garretd.env";
      description = ''
        A file of environment variables for garretd, kept out of the Nix store:
        the token signing key (GARRET_SERVER_TOKEN_HS256_SECRET_BASE64, or Attic's
        ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64 / ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64)
        and, for a node of a cluster, GARRET_CLUSTER_SECRET (the same on every node;
        `garretd gen-secret` makes one).
      '';
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = "garretd";
      description = "The user garretd runs as (a dynamic user, as with atticd).";
    };

    group = lib.mkOption {
      type = lib.types.str;
      default = "garretd";
      description = "The group garretd runs as.";
    };

    mode = lib.mkOption {
      type = lib.types.enum [
        "monolithic"
        "api-server"
        "garbage-collector"
      ];
      default = "monolithic";
      description = ''
        Attic's run mode. monolithic and api-server both run the whole node, which
        sweeps its own chunks and applies retention every [garbage-collection]
        interval; garbage-collector sweeps the data dir of a stopped lone node only.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Open the ports of settings.cluster.gossip-listen (TCP and UDP) and
        settings.cluster.p2p-listen (TCP) for the other nodes of the cluster.
        The HTTP port is left to you (usually behind a TLS-terminating proxy).
      '';
    };

    configFile = lib.mkOption {
      type = lib.types.package;
      readOnly = true;
      description = ''
        The server.toml the service (and garretd-make-token) runs with: settings rendered
        to TOML and checked by `garretd --mode check-config` when the system is built.
      '';
    };

    settings = lib.mkOption {
      description = ''
        server.toml as an attribute set (Attic's keys with Attic's meaning, plus
        Garret's data-dir, [uploads] and [cluster]); see the README's
        configuration section. Secrets belong in environmentFile.
      '';
      default = { };
      example = lib.literalExpression ''
        {
          listen = "127.0.0.1:8080";
          api-endpoint = "https://cache.example.com/";
          garbage-collection.default-retention-period = "6 months";
          cluster = { region = "eu"; gossip-listen = "0.0.0.0:7946"; p2p-listen = "0.0.0.0:4001"; join = [ "10.0.0.2:7946" ]; };
        }
      '';
      type = lib.types.submodule {
        freeformType = format.type;
        options = {
          listen = lib.mkOption {
            type = lib.types.str;
            default = "[::]:8080";
            description = "Where the HTTP API listens.";
          };
          data-dir = lib.mkOption {
            type = lib.types.str;
            default = "/var/lib/garretd";
            description = "Garret's Raft catalog and chunk store: the service's StateDirectory.";
          };
        };
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.environmentFile == null || lib.hasPrefix "/" cfg.environmentFile;
        message = "services.garretd.environmentFile must be an absolute path outside the Nix store (a string such as \"/run/secrets/garretd.env\").";
      }
      {
        assertion = cfg.settings.data-dir == "/var/lib/garretd";
        message = "services.garretd.settings.data-dir must stay /var/lib/garretd, the service's StateDirectory (it runs as a dynamic user under ProtectSystem=strict).";
      }
      {
        assertion = !(cfg.settings ? token-hs256-secret-base64) && !(cfg.settings.jwt.signing or { } != { });
        message = "services.garretd.settings must not hold the token signing key: it would be world-readable in the Nix store. Put GARRET_SERVER_TOKEN_HS256_SECRET_BASE64 (or ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64) in services.garretd.environmentFile.";
      }
      {
        assertion = !(clusterSettings ? secret);
        message = "services.garretd.settings.cluster.secret would be world-readable in the Nix store: put GARRET_CLUSTER_SECRET in services.garretd.environmentFile.";
      }
    ];

    services.garretd.configFile = checkedConfigFile;

    environment.systemPackages = [ makeTokenWrapper ];

    networking.firewall = lib.mkIf cfg.openFirewall {
      allowedTCPPorts = clusterPorts "gossip-listen" ++ clusterPorts "p2p-listen";
      allowedUDPPorts = clusterPorts "gossip-listen";
    };

    systemd.services.garretd = {
      description = "Garret Nix binary cache node";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];

      serviceConfig = {
        Type = "exec";
        ExecStart = "${lib.getExe cfg.package} --config ${checkedConfigFile} --mode ${cfg.mode}";
        EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
        Restart = "on-failure";
        RestartSec = "5s";
        # garretd leaves gossip and shuts down in order within 30 s of SIGTERM.
        TimeoutStopSec = "45s";
        LimitNOFILE = 65536;

        DynamicUser = true;
        User = cfg.user;
        Group = cfg.group;
        StateDirectory = "garretd";
        StateDirectoryMode = "0700";
        WorkingDirectory = "/var/lib/garretd";

        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = true;
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
          "AF_NETLINK"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        SystemCallErrorNumber = "EPERM";
        UMask = "0077";
      };
    };
  };
}
