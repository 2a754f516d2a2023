from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from drf_spectacular.plumbing import normalize_result_object
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.settings import patched_settings, spectacular_settings

from django_webhooks.api.webhooks_schema import OAS_VERSION, add_catalog_webhooks, webhooks_document

RENDERERS = {"yaml": OpenApiYamlRenderer, "json": OpenApiJsonRenderer}


class Command(BaseCommand):
    help = (
        "Export the OpenAPI 3.1 document with the event catalog as webhooks (one entry per event type "
        "customers can subscribe to): the project's API schema, as /api/schema/ serves it, or with "
        "--webhooks-only the catalog alone. Reads the catalog now (settings and EventType rows)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--webhooks-only",
            action="store_true",
            help="Only the webhooks and their schemas, without the API's paths (for receivers' authors).",
        )
        parser.add_argument("--format", choices=sorted(RENDERERS), default="yaml", help="Default: yaml.")
        parser.add_argument("--file", help="Write the document to this file instead of standard output.")
        parser.add_argument(
            "--urlconf", help="Dotted path of the URLconf whose API is documented (default ROOT_URLCONF)."
        )

    def handle(
        self, *args: Any, webhooks_only: bool, format: str, file: str | None, urlconf: str | None, **options: Any
    ) -> None:
        document = self.webhooks_only() if webhooks_only else self.api_schema(urlconf)
        output = RENDERERS[format]().render(document, renderer_context={})
        if file:
            Path(file).write_bytes(output)
        else:
            self.stdout.write(output.decode(), ending="" if output.endswith(b"\n") else "\n")

    def webhooks_only(self) -> dict[str, Any]:
        return normalize_result_object(
            webhooks_document(title=str(spectacular_settings.TITLE), version=str(spectacular_settings.VERSION))
        )

    def api_schema(self, urlconf: str | None) -> dict[str, Any]:
        """drf-spectacular's schema in OpenAPI 3.1, with the webhooks even where its settings do not add them."""
        generator = spectacular_settings.DEFAULT_GENERATOR_CLASS(urlconf=urlconf)
        with patched_settings({"OAS_VERSION": OAS_VERSION}):
            schema = generator.get_schema(request=None, public=True)
            if add_catalog_webhooks not in spectacular_settings.POSTPROCESSING_HOOKS:
                schema = normalize_result_object(add_catalog_webhooks(schema))
        return schema
