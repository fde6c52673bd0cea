"""Forms of the pages (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from typing import cast

from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import (
    DataRequired,
    EqualTo,
    Length,
    NumberRange,
    Optional,
    StopValidation,
    ValidationError,
)

from app.emails import InvalidEmail, normalize_email
from app.models.workflows import MAX_CONTACT_HOURS, MIN_CONTACT_HOURS


class SignInForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])

    def validate_email(self, field: StringField) -> None:
        """The same rule as the CLI's; the field then holds the address as stored."""
        try:
            field.data = normalize_email(field.data or "")
        except InvalidEmail as exc:
            raise ValidationError(str(exc)) from None


class WorkflowForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    topic = StringField("Topic", validators=[DataRequired(), Length(max=200)])
    audience = StringField("Audience", validators=[Optional(), Length(max=200)])
    modules = TextAreaField(
        "Modules",
        description="One per line, optionally with contact hours: “Reading charts | 2.5”",
        validators=[DataRequired()],
    )

    def validate_modules(self, field: TextAreaField) -> None:
        try:
            self.parsed_modules = parse_module_lines(field.data or "")
        except ModuleLinesError as exc:
            cast(list[str], field.errors).extend(exc.problems)  # one message per bad line, all beside the box
            raise StopValidation() from None


class ModuleLinesError(ValidationError):
    """Every problem of the modules box at once, so a person fixes them in one go."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0])
        self.problems = problems


def _module_line(number: int, line: str) -> tuple[tuple[str, float] | None, str | None]:
    """One 'Title | hours' line → ((title, hours), None) or (None, what is wrong with it)."""
    title, _, hours = (part.strip() for part in line.partition("|"))
    if not title or len(title) > 200:
        return None, f"Line {number}: a title of 1 to 200 characters is needed."
    try:
        value = float(hours) if hours else 3.0
    except ValueError:
        return None, f"Line {number}: “{hours}” is not a number of hours."
    if not MIN_CONTACT_HOURS <= value <= MAX_CONTACT_HOURS:  # False for NaN and infinity too
        return None, (
            f"Line {number}: contact hours must be between {MIN_CONTACT_HOURS:g} and "
            f"{MAX_CONTACT_HOURS:g} (at least 15 minutes)."
        )
    return (title, value), None


def parse_module_lines(text: str) -> list[tuple[str, float]]:
    """'Title | hours' per line (hours default to 3) → [(title, hours)], or ModuleLinesError
    listing every bad line."""
    modules, problems = [], []
    for number, line in enumerate((ln.strip() for ln in text.splitlines()), start=1):
        if not line:
            continue
        module, problem = _module_line(number, line)
        if module:
            modules.append(module)
        if problem:
            problems.append(problem)
    count = len(modules) + len(problems)
    if not 1 <= count <= 50:
        problems.append(f"Give between 1 and 50 modules, one per line ({count} given).")
    if problems:
        raise ModuleLinesError(problems)
    return modules


class PathForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    topic = StringField("Topic", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    concept_count = IntegerField("Number of concepts", validators=[Optional(), NumberRange(min=1, max=1000)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField(
        "New password again", validators=[DataRequired(), EqualTo("new_password", "The two do not match.")]
    )
