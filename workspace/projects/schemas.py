"""Request and response bodies of the project and collaborator endpoints."""

from __future__ import annotations

from marshmallow import ValidationError, fields, pre_load, validate, validates

from ..models import Role
from ..schemas import BaseSchema, PageSchema, text

NAME_MAX = 200
DESCRIPTION_MAX = 10_000
INVITABLE_ROLES = [Role.COLLABORATOR.value, Role.VIEWER.value]


class ProjectIn(BaseSchema):
    name = text(NAME_MAX, required=True, min_length=1)
    description = text(DESCRIPTION_MAX)

    @validates("name")
    def _name_not_blank(self, value: str, **_kwargs) -> None:
        if not value.strip():
            raise ValidationError("Must not be blank.")


class ProjectUpdateIn(ProjectIn):
    """PUT and PATCH alike: every field optional, the ones given are replaced."""

    name = text(NAME_MAX, min_length=1)


class ProjectOut(BaseSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]),
                         metadata={"description": "The caller's role in this project."})
    owner_id = fields.Integer(required=True, metadata={"description": "The creator."})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class ProjectPageOut(PageSchema):
    items = fields.List(fields.Nested(ProjectOut), required=True)


class CollaboratorIn(BaseSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    role = fields.String(required=True, validate=validate.OneOf(INVITABLE_ROLES))

    @pre_load
    def _trim_email(self, data, **_kwargs):
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip()}
        return data


class RoleIn(BaseSchema):
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]),
                         metadata={"description": "`owner` promotes; demoting the last owner is a 409."})


class CollaboratorOut(BaseSchema):
    user_id = fields.Integer(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    added_at = fields.DateTime(required=True)


class CollaboratorListOut(BaseSchema):
    items = fields.List(fields.Nested(CollaboratorOut), required=True)
