"""The CLI's one way to the federation: its REST API, found and authenticated as kubectl does.

Every ``fedctl`` command that reads or writes federation objects goes through
:class:`FederationClient` (never the database, never the ``kubernetes`` package, which import-linter
keeps in ``federation/members``). What it guarantees:

* **Connection** is resolved like kubectl: ``--server``/``--token`` override what the kubeconfig
  says; the kubeconfig is ``--kubeconfig``, else the first file of ``$KUBECONFIG``, else
  ``~/.kube/config``; the context is ``--context``, else the file's current context. The file
  ``fedctl up`` writes works as is. ``--server`` alone (no kubeconfig anywhere) is enough too.
* **Failures are one readable line**: :class:`CliError` (``str`` is the line, ``exit_code`` the exit
  code: 1 error, 2 usage). An unreachable server is ``cannot reach the federation at URL: connection
  refused``; a refused token ``the federation refused the token (401 Unauthorized)``; any other
  ``metav1.Status`` error is :class:`ApiFailure` carrying the Status and the server's own message.
* Objects are raw JSON (:data:`Obj`); lists come back with each item's ``apiVersion`` and ``kind``
  filled in (Kubernetes lists leave them out), so an item can be printed or re-applied as it is.
"""

from __future__ import annotations

import errno
import json
import os
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from federation.apimachinery import KubeconfigError, Obj, ResourceType, read_kubeconfig
from federation.apis import FEDERATION_KINDS

if TYPE_CHECKING:
    import typer

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
"""What kubectl sends for ``get``: the server's own ``meta.k8s.io/v1`` Table, else plain JSON."""


class CliError(Exception):
    """A failure the user reads as one line (``str(err)``); ``code`` is the exit code (1 or 2)."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.code = code

    @property
    def exit_code(self) -> int:
        """The process exit code (for :class:`ApiFailure`, whose ``code`` is the HTTP status: 1)."""
        return self.code


class ApiFailure(CliError):
    """The federation answered with a ``metav1.Status`` error; ``code`` is the HTTP status."""

    def __init__(self, message: str, *, status: dict[str, Any], code: int) -> None:
        super().__init__(message, code=code)
        self.status = status

    @property
    def reason(self) -> str:
        """``NotFound``, ``AlreadyExists``, ``Conflict``, ``Invalid``, ``Forbidden``, ..."""
        return str(self.status.get("reason", ""))

    @property
    def exit_code(self) -> int:
        return 1


def _kubeconfig_path(kubeconfig: Path | None) -> tuple[Path, bool]:
    """The kubeconfig to read, and whether the user named it (a missing default file is no error
    when ``--server`` is given)."""
    if kubeconfig is not None:
        return kubeconfig.expanduser(), True
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    if first:
        return Path(first).expanduser(), True
    return Path("~/.kube/config").expanduser(), False


@dataclass(frozen=True)
class Connection:
    """Where the federation is and how to talk to it (resolved as kubectl does)."""

    server: str
    token: str | None
    ca_pem: bytes | None
    insecure: bool
    namespace: str | None = None
    """The context's namespace: the default for ``-n``."""

    @classmethod
    def resolve(
        cls,
        *,
        kubeconfig: Path | None,
        context: str | None,
        server: str | None,
        token: str | None,
        certificate_authority: Path | None = None,
        insecure: bool = False,
    ) -> Connection:
        path, named = _kubeconfig_path(kubeconfig)
        ctx = None
        if path.exists() or named or server is None:
            if not path.exists():
                where = "--kubeconfig" if kubeconfig is not None else "KUBECONFIG" if named else "default"
                raise CliError(
                    f"no kubeconfig at {path} ({where}): pass --kubeconfig FILE (fedctl up writes "
                    "DATA_DIR/federation.kubeconfig) or --server URL --token TOKEN"
                )
            try:
                ctx = read_kubeconfig(path).context(context)
            except KubeconfigError as err:
                raise CliError(f"{path}: {err}") from None
        elif context is not None:
            raise CliError(f"--context {context}: no kubeconfig at {path}")
        ca_pem = ctx.ca_pem if ctx else None
        if certificate_authority is not None:
            try:
                ca_pem = certificate_authority.expanduser().read_bytes()
            except OSError as err:
                ca_file = certificate_authority
                raise CliError(f"cannot read --certificate-authority {ca_file}: {err.strerror}") from None
        resolved = cls(
            server=(server or (ctx.server if ctx else "")).rstrip("/"),
            token=token if token is not None else (ctx.token if ctx else None),
            ca_pem=ca_pem,
            insecure=insecure or bool(ctx and ctx.insecure_skip_tls_verify),
            namespace=ctx.namespace if ctx else None,
        )
        if not resolved.server.startswith(("https://", "http://")):
            raise CliError(f"the federation's server must be an http(s) URL, not {resolved.server!r}")
        return resolved


def _reason(err: Exception) -> str:
    """``connection refused``, ``timed out``, ``certificate verify failed``: what went wrong, briefly."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({cause.verify_message or 'verify failed'})"
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    if isinstance(err, httpx.TimeoutException):
        return "timed out"
    text = str(err) or type(err).__name__
    if text.startswith("[Errno"):
        text = text.split("]", 1)[-1].strip()
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate not trusted"
    return text[:1].lower() + text[1:]


def _failure(answer: httpx.Response) -> CliError:
    if answer.status_code == 401:
        return CliError("the federation refused the token (401 Unauthorized)")
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        message = str(body.get("message") or body.get("reason") or answer.reason_phrase)
        return ApiFailure(message, status=body, code=answer.status_code)
    text = f"{answer.status_code} {answer.reason_phrase}"
    status = {"kind": "Status", "status": "Failure", "code": answer.status_code, "message": text}
    return ApiFailure(f"the federation answered {text}", status=status, code=answer.status_code)


def _typed(items: list[Obj], rt: ResourceType) -> list[Obj]:
    for item in items:
        item.setdefault("apiVersion", rt.api_version)
        item.setdefault("kind", rt.kind)
    return items


class FederationClient:
    """A synchronous client of the federation's REST API (httpx, one kept-alive connection pool)."""

    def __init__(self, connection: Connection, *, timeout: float = 10.0) -> None:
        self.connection = connection
        self.timeout = timeout
        verify: ssl.SSLContext | bool = True
        if connection.insecure:
            verify = False
        elif connection.ca_pem is not None:
            verify = ssl.create_default_context(cadata=connection.ca_pem.decode("ascii"))
        headers = {"User-Agent": "fedctl", "Accept": "application/json"}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
        self._http = httpx.Client(base_url=connection.server, verify=verify, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FederationClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _unreachable(self, err: Exception) -> CliError:
        return CliError(f"cannot reach the federation at {self.connection.server}: {_reason(err)}")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str | None = None,
    ) -> Any:
        """One request; the decoded JSON answer (None when empty). Errors: :class:`CliError`."""
        headers = {"Accept": accept} if accept else {}
        content: bytes | None = None
        if body is not None:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            answer = self._http.request(method, path, params=params, content=content, headers=headers)
        except httpx.HTTPError as err:
            raise self._unreachable(err) from None
        if answer.status_code >= 400:
            raise _failure(answer)
        if not answer.content:
            return None
        try:
            return answer.json()
        except ValueError:
            raise CliError(f"the federation answered {method} {path} with something not JSON") from None

    # -- typed verbs ---------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj: Obj = self.request("GET", rt.path(namespace, name))
        return _typed([obj], rt)[0]

    def list_with_version(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        """The items and the list's resourceVersion (to watch from)."""
        params = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        body = self.request("GET", rt.path(namespace), params=params)
        version = str((body.get("metadata") or {}).get("resourceVersion", ""))
        return _typed(list(body.get("items") or []), rt), version

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        """Every object of ``rt`` in ``namespace`` (None: all namespaces, or a cluster-scoped kind)."""
        items, _ = self.list_with_version(
            rt, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return items

    def table(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> dict[str, Any]:
        """The server's ``meta.k8s.io/v1`` Table of one object or a list (what ``kubectl get`` prints)."""
        params = {"labelSelector": label_selector} if label_selector and name is None else {}
        table: dict[str, Any] = self.request(
            "GET", rt.path(namespace, name), params=params, accept=TABLE_ACCEPT
        )
        if table.get("kind") != "Table":
            raise CliError(f"the federation did not answer {rt.plural} as a Table")
        return table

    def create(self, rt: ResourceType, namespace: str | None, obj: Obj, *, dry_run: bool = False) -> Obj:
        params = {"dryRun": "All"} if dry_run else None
        made: Obj = self.request("POST", rt.path(namespace), params=params, body=obj)
        return made

    def replace(self, rt: ResourceType, namespace: str | None, obj: Obj, *, dry_run: bool = False) -> Obj:
        """PUT ``obj`` over the object of its name (``metadata.resourceVersion``: only over that one)."""
        name = str((obj.get("metadata") or {}).get("name", ""))
        params = {"dryRun": "All"} if dry_run else None
        made: Obj = self.request("PUT", rt.path(namespace, name), params=params, body=obj)
        return made

    def delete(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        """Delete (the federation first removes member copies); the object as it is now, or a Status."""
        gone: Obj = self.request("DELETE", rt.path(namespace, name)) or {}
        return gone

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
        field_selector: str | None = None,
    ) -> Iterator[tuple[str, Obj]]:
        """``(ADDED|MODIFIED|DELETED, object)`` until the server ends the watch (``timeout_seconds``).
        An ERROR event (410 Gone: too old a version) raises :class:`ApiFailure`. Without a version the
        server first sends the objects that exist as ADDED."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if resource_version:
            params["resourceVersion"] = resource_version
        if field_selector:
            params["fieldSelector"] = field_selector
        timeout = httpx.Timeout(self.timeout, read=timeout_seconds + self.timeout)
        try:
            with self._http.stream("GET", rt.path(namespace), params=params, timeout=timeout) as answer:
                if answer.status_code >= 400:
                    answer.read()
                    raise _failure(answer)
                for line in answer.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = str(event.get("type", "")), event.get("object") or {}
                    if kind == "ERROR":
                        code = int(obj.get("code") or 500)
                        raise ApiFailure(str(obj.get("message") or "watch failed"), status=obj, code=code)
                    if kind == "BOOKMARK":
                        continue
                    yield kind, _typed([obj], rt)[0]
        except httpx.HTTPError as err:
            raise self._unreachable(err) from None

    # -- kinds ---------------------------------------------------------------------------------------

    def resource(self, kind_or_alias: str) -> ResourceType:
        """The kind a user names as kubectl accepts it: ``rs``, ``replicasets``, ``ReplicaSet``,
        ``replicasets.apps``, ``svc``, ``pl``, ``clusters``, ... Unknown: CliError (exit 2)."""
        return resource_type(kind_or_alias)


def resource_type(kind_or_alias: str) -> ResourceType:
    """See :meth:`FederationClient.resource` (no connection needed)."""
    wanted = kind_or_alias.strip().lower()
    for rt in FEDERATION_KINDS:
        names = {rt.plural, rt.singular, rt.kind.lower(), *rt.short_names}
        if rt.group:
            names |= {f"{rt.plural}.{rt.group}", f"{rt.singular}.{rt.group}", f"{rt.kind.lower()}.{rt.group}"}
        if wanted in names:
            return rt
    known = ", ".join(sorted(rt.plural for rt in FEDERATION_KINDS))
    raise CliError(f'the federation has no resource type "{kind_or_alias}" (known: {known})', code=2)


def resource_of(api_version: str, kind: str) -> ResourceType | None:
    """The kind of a manifest (``apps/v1``, ``ReplicaSet``), or None when the federation has no such kind."""
    for rt in FEDERATION_KINDS:
        if rt.api_version == api_version and rt.kind == kind:
            return rt
    return None


@dataclass(frozen=True)
class GlobalOptions:
    """The options of ``fedctl`` itself (before the command), kept on the root context's ``obj``."""

    kubeconfig: Path | None = None
    context: str | None = None
    server: str | None = None
    token: str | None = None
    certificate_authority: Path | None = None
    insecure: bool = False
    debug: bool = False

    def connection(self) -> Connection:
        return Connection.resolve(
            kubeconfig=self.kubeconfig,
            context=self.context,
            server=self.server,
            token=self.token,
            certificate_authority=self.certificate_authority,
            insecure=self.insecure,
        )


def global_options(ctx: typer.Context) -> GlobalOptions:
    """What the ``fedctl`` callback recorded (defaults when a command runs on its own, as in tests)."""
    found = ctx.find_object(GlobalOptions)
    return found if found is not None else GlobalOptions()


def client_from_options(ctx: typer.Context) -> FederationClient:
    """A client for the federation the global options (``--kubeconfig``, ``--context``, ``--server``,
    ``--token``) name; a CliError when they name none."""
    return FederationClient(global_options(ctx).connection())


def default_namespace(ctx: typer.Context, namespace: str | None) -> str:
    """``-n`` when given, else the context's namespace, else ``default`` (as kubectl)."""
    if namespace:
        return namespace
    try:
        return global_options(ctx).connection().namespace or "default"
    except CliError:
        return "default"
