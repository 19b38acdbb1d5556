"""The Qt user interface of the studio (PySide6). Import submodules directly; importing this
package imports nothing heavy."""
