from django.shortcuts import render
from django.views.decorators.http import require_GET

from workbench.access import role_required


@require_GET
@role_required
def my_tasks(request):
    # TODO: list the CSM's playbook tasks (arrives with the playbooks models)
    return render(request, "playbooks/my_tasks.html", {"tasks": []})


@require_GET
@role_required
def board(request):
    # TODO: the managers' board of assignments (arrives with the models)
    return render(request, "playbooks/board.html", {"assignments": []})
