# The flake's `lib`: reading cache.toml in Nix, and what other repositories build from it.
#
# Pure on purpose: nothing here imports nixpkgs. Only builtins are used (all present in
# Nix 2.8), so `lib` evaluates on a machine that cannot fetch nixpkgs, and the same file
# is the system-independent `lib` output of the flake. `mkApps` is the one function that
# needs packages, and it takes the caller's `pkgs` as an argument (crane's `mkLib` style).
#
# Validation mirrors the Rust parser (crates/nix-cache-tools/src/cachetoml.rs): the same
# keys, the same rules for URLs, Cachix names, public keys and token variables, and errors
# that name the file and the key and say what to do. Two things only the tools check:
# line numbers (`builtins.fromTOML` drops them) and `push.filter` as a Rust regex.
let
  inherit (builtins)
    all
    any
    attrNames
    concatStringsSep
    elem
    elemAt
    filter
    foldl'
    genList
    head
    isAttrs
    isList
    isPath
    isString
    length
    match
    replaceStrings
    stringLength
    substring
    toJSON
    typeOf
    ;

  # Marks an attribute set as already read and validated by `cacheConfig`.
  configType = "nix-cache-tools.cache-config";

  cacheKeys = [
    "url"
    "cachix"
    "public-key"
    "token-env"
  ];
  pushKeys = [
    "to"
    "filter"
    "secret-key-file"
  ];
  substituterSchemes = [
    "http"
    "https"
    "file"
    "s3"
    "ssh"
    "ssh-ng"
    "gs"
  ];

  letters = s: genList (i: substring i 1 s) (stringLength s);
  toLower = replaceStrings (letters "ABCDEFGHIJKLMNOPQRSTUVWXYZ") (letters "abcdefghijklmnopqrstuvwxyz");

  hasInfix =
    infix: s:
    let
      n = stringLength infix;
    in
    n <= stringLength s && any (i: substring i n s == infix) (genList (i: i) (stringLength s - n + 1));

  # Keeps the first occurrence of each element, in order.
  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];

  ordinal =
    n:
    let
      s = toString n;
      last = substring (stringLength s - 1) 1 s;
      teen = n > 10 && n < 14;
    in
    s
    + (
      if !teen && last == "1" then
        "st"
      else if !teen && last == "2" then
        "nd"
      else if !teen && last == "3" then
        "rd"
      else
        "th"
    );

  describe = v: if isString v then toJSON v else "${typeOf v} `${toJSON v}`";

  # ---- value checks: each returns null when fine, else the message -------------------

  # `url::validate_substituter`.
  urlProblem =
    url:
    let
      parts = match "([^:/?#]*)://(.*)" url;
      scheme = if parts == null then null else head parts;
      rest = if parts == null then "" else elemAt parts 1;
      authority = head (match "([^/?]*).*" rest);
      userless =
        let
          m = match ".*@(.*)" authority;
        in
        if m == null then authority else head m;
      v6 = match "\\[([^]]*)].*" userless;
      host =
        if substring 0 1 userless == "[" then
          (if v6 == null then null else head v6)
        else
          head (match "([^:]*).*" userless);
    in
    if match ".*[[:space:]].*" url != null then
      "`${url}` contains white space, which Nix's config parser would split: remove it"
    else if hasInfix "#" url then
      "`${url}` contains `#`, which starts a comment in nix.conf, even inside a value: remove it"
    else if scheme == null || match "[A-Za-z0-9+.-]+" scheme == null then
      "`${url}` is not a store URL: expected SCHEME://..., e.g. https://cache.example.org"
    else if !elem (toLower scheme) substituterSchemes then
      "`${url}` uses the scheme `${toLower scheme}`, which Nix cannot substitute from: use one of ${concatStringsSep ", " substituterSchemes}"
    else if toLower scheme != "file" && (host == null || host == "") then
      "`${url}` has no host after `://`"
    else
      null;

  # `keys::PublicKey::parse`: NAME:BASE64 where BASE64 is standard, padded, 32 bytes.
  publicKeyProblem =
    key:
    let
      parts = match "([^:]*):(.*)" key;
      name = head parts;
      b64 = elemAt parts 1;
      len = stringLength b64;
      padding = stringLength (head (match "[^=]*(=*)" b64));
      wellFormed = match "([A-Za-z0-9+/]*)(=?=?)" b64 != null && len - (len / 4) * 4 == 0;
      bytes = len / 4 * 3 - padding;
    in
    if parts == null then
      "`${key}` is not a Nix key: expected NAME:BASE64, e.g. `cache.example.org-1:AbC...=`"
    else if name == "" then
      "`${key}` has an empty key name before the `:`"
    else if !wellFormed then
      "the key `${key}` is not valid base64 after the `:`: check that it was copied whole"
    else if bytes != 32 then
      "the key `${key}` decodes to ${toString bytes} bytes, a Nix public key has 32: check that it was copied whole"
    else if match "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=" b64 == null then
      "the key `${key}` is not valid base64 after the `:` (its last character has stray bits): check that it was copied whole"
    else
      null;

  cachixNameProblem =
    name:
    if match "[A-Za-z0-9_-]+" name == null then
      "`${name}` is not a Cachix cache name (letters, digits and `-` only)"
    else
      null;

  tokenEnvProblem =
    v:
    if match "[A-Za-z_][A-Za-z0-9_]*" v == null then
      "`${v}` is not an environment variable name"
    else
      null;

  # `cachetoml::validate_push_target`.
  pushTargetProblem =
    to:
    let
      cachix = match "cachix:(.*)" to;
      attic = match "attic:(.*)" to;
    in
    if cachix != null then
      (
        if head cachix == "" || hasInfix "/" (head cachix) then
          "`${to}`: expected cachix:NAME"
        else
          null
      )
    else if attic != null then
      (if head attic == "" then "`${to}`: expected attic:CACHE or attic:SERVER:CACHE" else null)
    else if match "[A-Za-z0-9+.-]+://.*" to == null then
      "`${to}` is not a push target: use cachix:NAME, attic:CACHE, or a Nix store URI such as file:///path, https://host, s3://bucket, ssh-ng://host"
    else
      null;

  # ---- validation of the whole file ---------------------------------------------------

  # Validates `raw` (what `builtins.fromTOML` returns) read from `file` (null for an
  # attribute set given directly). Returns { errors = [ message ]; config; }, where config
  # is meaningful only when errors == [ ].
  check =
    file: raw:
    let
      shownFile = if file == null then "<attribute set>" else file;
      err =
        where: key: msg:
        "nix-cache-tools: ${shownFile}: `${key}`${where}: ${msg}";

      rootErrors = map (k: err "" k "unknown key; allowed here: cache, push") (
        filter (k: !elem k [ "cache" "push" ]) (attrNames raw)
      );

      rawCaches = raw.cache or [ ];
      cachesShapeOk = isList rawCaches && all isAttrs rawCaches;
      cacheShapeErrors =
        if cachesShapeOk then
          [ ]
        else
          [
            (err "" "cache" "must be a list of tables: write each cache under its own `[[cache]]` header")
          ];

      checkCache =
        i: t:
        let
          where = " (in the ${ordinal (i + 1)} [[cache]])";
          e = key: msg: err where "cache.${key}" msg;
          unknown = filter (k: !elem k cacheKeys) (attrNames t);
          notString = filter (k: !isString t.${k}) (filter (k: elem k cacheKeys) (attrNames t));
          hasUrl = t ? url;
          hasCachix = t ? cachix;
          url = if hasCachix then "https://${t.cachix}.cachix.org" else t.url;
          problem =
            if unknown != [ ] then
              e (head unknown) "unknown key; allowed here: ${concatStringsSep ", " cacheKeys}"
            else if notString != [ ] then
              let
                k = head notString;
              in
              e k "must be a string, not ${describe t.${k}}, e.g. ${k} = \"...\""
            else if hasUrl && hasCachix then
              e "cachix" "give either `url` or `cachix`, not both"
            else if hasUrl && urlProblem t.url != null then
              e "url" (urlProblem t.url)
            else if hasCachix && cachixNameProblem t.cachix != null then
              e "cachix" (cachixNameProblem t.cachix)
            else if !hasUrl && !hasCachix then
              e "url" "missing: each [[cache]] needs `url = \"https://...\"` or `cachix = \"NAME\"`"
            else if !(t ? public-key) then
              e "public-key" "missing: the cache's public key, NAME:BASE64 (shown on the cache's page or by `nix key convert-secret-to-public`)"
            else if publicKeyProblem (trim t.public-key) != null then
              e "public-key" (publicKeyProblem (trim t.public-key))
            else if t ? token-env && tokenEnvProblem t.token-env != null then
              e "token-env" (tokenEnvProblem t.token-env)
            else
              null;
        in
        {
          inherit problem;
          value = {
            inherit url;
            public-key = trim t.public-key;
            cachix = t.cachix or null;
            token-env = t.token-env or null;
          };
        };

      checkedCaches = if cachesShapeOk then genList (i: checkCache i (elemAt rawCaches i)) (length rawCaches) else [ ];
      cacheErrors = filter (p: p != null) (map (c: c.problem) checkedCaches);

      rawPush = raw.push or null;
      pushErrors =
        if rawPush == null then
          [ ]
        else if !isAttrs rawPush then
          [ (err "" "push" "must be a table: `[push]`") ]
        else
          let
            e = key: msg: err "" "push.${key}" msg;
            unknown = filter (k: !elem k pushKeys) (attrNames rawPush);
            notString = filter (k: !isString rawPush.${k}) (filter (k: elem k pushKeys) (attrNames rawPush));
          in
          if unknown != [ ] then
            [ (e (head unknown) "unknown key; allowed here: ${concatStringsSep ", " pushKeys}") ]
          else if notString != [ ] then
            let
              k = head notString;
            in
            [ (e k "must be a string, not ${describe rawPush.${k}}, e.g. ${k} = \"...\"") ]
          else if rawPush ? to && pushTargetProblem rawPush.to != null then
            [ (e "to" (pushTargetProblem rawPush.to)) ]
          else
            [ ];
    in
    {
      errors = rootErrors ++ cacheShapeErrors ++ cacheErrors ++ pushErrors;
      config = {
        _type = configType;
        inherit file;
        caches = map (c: c.value) checkedCaches;
        push =
          if rawPush == null then
            null
          else
            {
              to = rawPush.to or null;
              filter = rawPush.filter or null;
              secret-key-file = rawPush.secret-key-file or null;
            };
      };
    };

  trim =
    s:
    let
      m = match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s;
    in
    if isString s && m != null then head m else s;

  fileName = f: toString f;

  parseFile =
    path:
    let
      file = fileName path;
    in
    builtins.addErrorContext "while reading ${file} (nix-cache-tools cache.toml)" (
      builtins.fromTOML (builtins.readFile path)
    );

  # Any accepted form of a configuration, validated: { errors; config; }.
  checkAny =
    cfg:
    if isPath cfg || isString cfg then
      check (fileName cfg) (parseFile cfg)
    else if isAttrs cfg && (cfg._type or null) == configType then
      {
        errors = [ ];
        config = cfg;
      }
    else if isAttrs cfg then
      check null cfg
    else
      throw "nix-cache-tools: expected a path to cache.toml or an attribute set, got a ${typeOf cfg}";

  tomlString = toJSON;

  # ---- the public functions -------------------------------------------------------------

  cacheConfigErrors = cfg: (checkAny cfg).errors;

  cacheConfig =
    cfg:
    let
      r = checkAny cfg;
    in
    if r.errors == [ ] then r.config else throw (head r.errors);

  readCacheConfig =
    path:
    if isPath path || isString path then
      cacheConfig path
    else
      throw "nix-cache-tools: readCacheConfig takes the path of a cache.toml (e.g. ./cache.toml), got a ${typeOf path}";

  nixSettings =
    cfg:
    let
      c = cacheConfig cfg;
    in
    {
      extra-substituters = unique (map (x: x.url) c.caches);
      extra-trusted-public-keys = unique (map (x: x.public-key) c.caches);
    };

  toCacheToml =
    cfg:
    let
      c = cacheConfig cfg;
      line = k: v: if v == null then "" else "${k} = ${tomlString v}\n";
      cacheTable =
        x:
        "[[cache]]\n"
        + (if x.cachix != null then line "cachix" x.cachix else line "url" x.url)
        + line "public-key" x.public-key
        + line "token-env" x.token-env;
      pushTable =
        p: "[push]\n" + line "to" p.to + line "filter" p.filter + line "secret-key-file" p.secret-key-file;
    in
    concatStringsSep "\n" (map cacheTable c.caches ++ (if c.push == null then [ ] else [ (pushTable c.push) ]));

  tools = {
    setup-cache = "Add this project's binary caches (cache.toml) to nix.conf, safely";
    push-cache = "Push a build's closure to this project's binary cache (cache.toml)";
    cache-analytics = "Report on the Nix store, nix.conf and this project's cache coverage";
  };

  mkApps =
    {
      pkgs,
      config,
      package ? pkgs.callPackage ./package.nix { },
    }:
    let
      c = cacheConfig config;
      secret = if c.push == null then null else c.push.secret-key-file;
      relativeSecret = secret != null && substring 0 1 secret != "/";
      configFile = pkgs.writeText "cache.toml" (
        if c.file != null then builtins.readFile c.file else toCacheToml c
      );
      # The tools resolve a relative secret-key-file against the directory of cache.toml,
      # which for these apps is the Nix store: refuse rather than fail at run time.
      configFileFor =
        name:
        if name == "push-cache" && relativeSecret then
          throw "nix-cache-tools: ${
            if c.file == null then "<attribute set>" else c.file
          }: `push.secret-key-file` is relative (`${secret}`): the push-cache app from lib.mkApps reads a copy of cache.toml in the Nix store, where a relative path would point into the store. Give an absolute path such as /run/secrets/cache-signing-key (setup-cache and cache-analytics are not affected)"
        else
          configFile;
      mkApp = name: description: {
        type = "app";
        program = "${pkgs.writeShellScript name ''
          # CACHE_TOOLS_CONFIG means the same as --config; an explicit --config still wins.
          export CACHE_TOOLS_CONFIG=${configFileFor name}
          exec ${package}/bin/${name} "$@"
        ''}";
        meta.description = description;
      };
    in
    builtins.mapAttrs mkApp tools;
in
{
  inherit
    readCacheConfig
    cacheConfig
    cacheConfigErrors
    nixSettings
    toCacheToml
    mkApps
    ;

  # Descriptions of the three tools, shared by the flake's own apps and `mkApps`.
  toolDescriptions = tools;
}
