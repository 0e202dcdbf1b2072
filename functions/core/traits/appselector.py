"""AppSelector: install, search for and open applications on a media device (TVs, set-top boxes, speakers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.schema import NON_EMPTY_STRING, STRING, array, obj
from functions.core.traits import _localized, register
from functions.core.traits.base import CommandContext, Effect, Trait, command

NO_AVAILABLE_APP = "noAvailableApp"

# Google answers the user with the first synonym, so each language lists at least one.
_NAMES = array(
    obj(
        {"name_synonym": array(STRING, min_items=1), "lang": NON_EMPTY_STRING},
        required=("name_synonym", "lang"),
    )
)
_APPLICATION = obj({"key": NON_EMPTY_STRING, "names": _NAMES}, required=("key", "names"))
_APPLICATION_NAMES = _localized.NamedEntries(name_key="key", values_key="names", words_key="name_synonym")

# The application is named by its key, by its name, or both; at least one of the two.
_APP_PARAMS = obj(
    {"newApplication": STRING, "newApplicationName": STRING},
    anyOf=[{"required": ["newApplication"]}, {"required": ["newApplicationName"]}],
)


def find_application(ctx: CommandContext) -> Mapping[str, Any]:
    """The application the command names: by key first, then by name or synonym in the device's language."""
    applications = ctx.attributes.get("availableApplications") or []
    for field in ("newApplication", "newApplicationName"):
        wanted = ctx.params.get(field)
        if wanted is None:
            continue
        found = _APPLICATION_NAMES.find(applications, wanted, ctx.language)
        if found is not None:
            return found
    asked = ctx.params.get("newApplication", ctx.params.get("newApplicationName"))
    raise errors.CommandError(NO_AVAILABLE_APP, f"no application {asked!r} on this device")


@register
class AppSelector(Trait):
    name = "AppSelector"
    # A selector without applications could never answer a QUERY (currentApplication is required), so
    # at least one application is listed.
    attributes_schema = obj(
        {"availableApplications": array(_APPLICATION, min_items=1)},
        required=("availableApplications",),
    )
    states_schema = obj({"currentApplication": STRING})

    @classmethod
    def attribute_errors(cls, attributes: Mapping[str, Any]) -> list[str]:
        problems = super().attribute_errors(attributes)
        if problems or "availableApplications" not in attributes:
            return problems
        return _APPLICATION_NAMES.listed_twice(
            attributes["availableApplications"], f"attributes ({cls.name}).availableApplications", "key "
        )

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        applications = attributes.get("availableApplications") or []
        return {"currentApplication": applications[0]["key"]} if applications else {}

    @command("appInstall", params=_APP_PARAMS)
    def install(self, ctx: CommandContext) -> Effect:
        # Installing does not bring the application to the foreground.
        find_application(ctx)
        return Effect()

    @command("appSearch", params=_APP_PARAMS)
    def search(self, ctx: CommandContext) -> Effect:
        # The device shows the application in its store or launcher; nothing Google queries changes.
        find_application(ctx)
        return Effect()

    @command("appSelect", params=_APP_PARAMS)
    def select(self, ctx: CommandContext) -> Effect:
        return Effect(state={"currentApplication": find_application(ctx)["key"]})
